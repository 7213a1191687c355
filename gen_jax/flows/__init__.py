"""Normalizing flows: bijectors as pure functions and the change-of-variables density."""
