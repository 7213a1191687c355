"""An autoregressive density on 2-D points, p(x₁) p(x₂ | x₁), each conditional a mixture of
`model.num_mixtures` Gaussians whose parameters come from a MADE (model.kind=mixture_made);
exact test NLL on 10,000 test points beside the true density's (`data_nll`).

MADE 128-128 with 3·K outputs per dimension, K = 16; Adam 1e-3 with warm-up and cosine decay,
global batch 256, 20,000 steps. Expected results: README's autoregressive table
(`python -m experiments.autoregressive --workdir=DIR
--config=experiments/configs/autoregressive_2d.py:<density>`). Variants: one per 2-D density
(eight_gaussians by default, checkerboard, two_moons, swiss_roll, rings, ...) and `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.kind = "mixture_made"
  m.hidden_sizes = (128, 128)
  m.num_mixtures = 16
  return m


def smoke(c):
  c.model.hidden_sizes = (16,)
  c.model.num_mixtures = 3
  common.points_smoke(c)


def get_config(arg: str = ""):
  c = common.points_config("autoregressive")
  c.model = model_defaults()
  return common.apply_variants(c, arg, {**common.density_variants(), "smoke": smoke})
