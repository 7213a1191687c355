"""The generic trainer, optimizers, checkpoints, writers and plots."""

from gen_jax.training.trainer import Task, TrainResult, make_mesh, make_train_step, train

__all__ = ["Task", "TrainResult", "make_mesh", "make_train_step", "train"]
