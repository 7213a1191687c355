"""The generic trainer (setup, loop, finish), the step-level Task contract, optimizers,
sharding, checkpoints, writers and plots."""

from gen_jax.training.sharding import make_mesh
from gen_jax.training.task import Density, Task, group_update, loss_step
from gen_jax.training.trainer import (Interrupted, Run, TrainResult, finish, loop, restore_params,
                                      setup, train)

__all__ = ["Density", "Interrupted", "Run", "Task", "TrainResult", "finish", "group_update",
           "loop", "loss_step", "make_mesh", "restore_params", "setup", "train"]
