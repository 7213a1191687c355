"""Defaults every experiment shares, and the variant parser for `--config=FILE:variant`."""

from __future__ import annotations

import functools
from typing import Callable, Mapping

import ml_collections


def trainer_defaults() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.family = ""  # set by each family's config: picks the task in experiments.evaluate
  c.seed = 0
  c.num_devices = 0  # 0: every device (of every host); the global batch is split over them.
  c.mesh = ml_collections.ConfigDict()
  # Parameters and optimizer state sliced over this many devices (mesh axis 'fsdp'); the
  # 'data' axis takes the rest. Results equal those of 1 within float tolerance.
  c.mesh.fsdp = 1

  c.data = ml_collections.ConfigDict()
  c.data.name = "mnist5k"
  c.data.data_dir = ""  # "" -> $TFDS_DATA_DIR or ~/tensorflow_datasets
  c.data.transforms = ("dynamic_binarize",)
  c.data.path = ""  # image_folder: the folder of images
  c.data.image_size = 64  # image_folder: square side after resize + centre crop
  c.data.channels = 3  # image_folder
  c.data.test_fraction = 0.05  # image_folder
  c.data.train_size = 50_000  # 2-D densities
  c.data.test_size = 10_000  # 2-D densities

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 10_000
  c.train.batch_size = 100  # global, across all devices
  c.train.log_every = 100
  c.train.checkpoint_every = 1_000
  c.train.keep_checkpoints = 3
  c.train.sample_every = 2_500
  c.train.ema_decay = 0.999
  c.train.progress_bar = True
  # Steps per compiled call (a lax.scan over stacked batches); > 1 for small models whose
  # step is short next to its dispatch. Results are those of 1.
  c.train.steps_per_call = 1

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 200
  c.optim.final_lr_fraction = 0.1
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.eps = 1e-8
  c.optim.weight_decay = 0.0
  c.optim.grad_clip_norm = 100.0

  c.eval = ml_collections.ConfigDict()
  c.eval.every_steps = 0
  c.eval.batch_size = 100
  c.eval.num_examples = 0  # 0: the whole test split
  return c


def tiny_run(c: ml_collections.ConfigDict):
  """The trainer part of every `:smoke` variant: 40 steps of batch 32, logged every 10,
  checkpointed and sampled every 20."""
  c.train.num_steps = 40
  c.train.batch_size = 32
  c.train.log_every = 10
  c.train.checkpoint_every = 20
  c.train.sample_every = 20


def smoke_on_digits(smoke: Callable[[ml_collections.ConfigDict], None]):
  """An mnist5k config's `:smoke`: the digits config's smoke variant, on digits (8x8, seconds)."""

  def variant(c: ml_collections.ConfigDict):
    smoke(c)
    c.data.name = "digits"

  return variant


def points_config(family: str) -> ml_collections.ConfigDict:
  """The trainer part of a 2-D density experiment: eight_gaussians (a variant per density, see
  `density_variants`), raw coordinates, global batch 256, 20,000 steps, logged every 200,
  checkpointed every 5,000, evaluated on the test points in batches of 1,000."""
  c = trainer_defaults()
  c.family = family
  c.data.name = "eight_gaussians"
  c.data.transforms = ()
  c.train.num_steps = 20_000
  c.train.batch_size = 256
  c.train.log_every = 200
  c.train.checkpoint_every = 5_000
  c.train.sample_every = 0
  c.eval.batch_size = 1_000
  return c


def points_smoke(c: ml_collections.ConfigDict):
  """`tiny_run` on 2,000 training and 200 test points, with 5 warm-up steps."""
  tiny_run(c)
  c.data.train_size = 2_000
  c.data.test_size = 200
  c.optim.warmup_steps = 5


def density_variants() -> dict:
  """A variant per 2-D density of gen_jax.data.densities, setting data.name."""
  from gen_jax.data.densities import DENSITIES

  def use(name, c):
    c.data.name = name

  return {name: functools.partial(use, name) for name in DENSITIES}


def apply_variants(config: ml_collections.ConfigDict, arg: str,
                   variants: Mapping[str, Callable[[ml_collections.ConfigDict], None]]):
  """Applies comma-separated variants (e.g. "digits,smoke") in order, then locks the config
  so that a misspelt field is an error, not a silent new field."""
  for name in filter(None, (arg or "").split(",")):
    if name not in variants:
      raise ValueError(f"unknown config variant {name!r}; choose from {sorted(variants)}")
    variants[name](config)
  config.lock()
  return config
