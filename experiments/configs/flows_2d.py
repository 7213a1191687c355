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

import functools

import ml_collections

from experiments.configs import common
from gen_jax.data.densities import DENSITIES


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
  common.tiny_run(c)
  c.data.train_size = 2_000
  c.data.test_size = 200
  c.optim.warmup_steps = 5


def use_density(name, c):
  c.data.name = name


def get_config(arg: str = ""):
  c = common.trainer_defaults()
  c.family = "flows"
  c.data.name = "eight_gaussians"
  c.data.transforms = ()
  c.model = model_defaults()
  c.train.num_steps = 20_000
  c.train.batch_size = 256
  c.train.log_every = 200
  c.train.checkpoint_every = 5_000
  c.train.sample_every = 0
  c.eval.batch_size = 1_000
  variants = {name: functools.partial(use_density, name) for name in DENSITIES}
  return common.apply_variants(c, arg, {**variants, "smoke": smoke})
