"""Hopfield capacity: N = 500, loads 0.02 to 0.24, 10 % of bits flipped at start, 10 sweeps.

Expected: mean overlap near 1 below α ≈ 0.13, collapsing around α_c ≈ 0.138 (finite N
smooths the transition). Variant `:smoke`: N = 100, a few loads, seconds.
"""

import ml_collections

from experiments.configs import common


def smoke(c):
  c.num_units = 100
  c.load_step = 0.06
  c.num_trials = 1
  c.num_probes = 10
  c.num_sweeps = 3


def get_config(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.family = "hopfield"
  c.seed = 0
  c.num_units = 500
  c.min_load = 0.02
  c.max_load = 0.24
  c.load_step = 0.01
  c.flip_fraction = 0.1
  c.num_sweeps = 10
  c.num_trials = 3
  c.num_probes = 50
  return common.apply_variants(c, arg, {"smoke": smoke})
