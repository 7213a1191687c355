"""Normalizing flows on a 2-D density (`model.kind`: planar | radial | nice | realnvp | spline |
maf | iaf | glow), trained by maximum likelihood; exact test NLL on 10,000 test points.

Defaults: a rational-quadratic spline coupling flow (8 layers, 8 bins on [-4, 4] after a
data-initialised ActNorm, conditioners MLP 128-128), Adam 1e-3 with warm-up and cosine decay,
global batch 256, 20,000 steps. eval.json holds `nll`, `nll_sem` and `data_nll` (the true
density's NLL of the same points: the best any model can do) and `density_integral`.
Expected results: README's flow table (`python -m experiments.results`, run with
`python -m experiments.flows --workdir=DIR --config=experiments/configs/flows_2d.py:<density>
--config.model.kind=<kind>`). Variants: one per 2-D density (eight_gaussians by default,
checkerboard, two_moons, swiss_roll, rings) and `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.kind = "spline"  # planar | radial | nice | realnvp | spline | maf | iaf | glow
  m.num_layers = 8
  m.hidden_sizes = (128, 128)  # conditioner MLPs (coupling) and MADEs (maf, iaf)
  m.num_bins = 8  # spline
  m.bound = 4.0  # spline: [-B, B], the identity outside
  m.init_examples = 1_000  # training points for the ActNorm layers' data-dependent init
  return m


def smoke(c):
  c.model.num_layers = 2
  c.model.hidden_sizes = (16,)
  c.model.init_examples = 64
  common.points_smoke(c)


def get_config(arg: str = ""):
  c = common.points_config("flows")
  c.model = model_defaults()
  return common.apply_variants(c, arg, {**common.density_variants(), "smoke": smoke})
