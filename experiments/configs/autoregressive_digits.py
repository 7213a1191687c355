"""Autoregressive models on scikit-learn's 8x8 digits (64 pixels), binarized (default) or as
8-bit images (`:8bit`); the rest as autoregressive_mnist5k.py, with a MADE of 256 hidden units
and 2,000 steps. Expected results: README's autoregressive table
(`python -m experiments.autoregressive --workdir=DIR
--config=experiments/configs/autoregressive_digits.py[:8bit] --config.model.kind=<kind>`).
Variants: `:8bit`, `:conditional`, `:smoke`.
"""

from __future__ import annotations

from experiments.configs import autoregressive_mnist5k, common


def get_config(arg: str = ""):
  c = autoregressive_mnist5k.image_config()
  c.data.name = "digits"
  c.model.context = 16
  c.model.hidden_sizes = (256,)
  c.model.hidden_size = 128
  c.train.num_steps = 2_000
  c.train.checkpoint_every = 500
  c.train.sample_every = 1_000
  return common.apply_variants(c, arg, autoregressive_mnist5k.VARIANTS)
