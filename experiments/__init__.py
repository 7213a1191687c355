"""Experiment launchers (`python -m experiments.<family>`) and their configs."""
