"""Sigmoid belief net 784-200-200 (two hidden layers) trained by wake-sleep on statically
binarized mnist5k: Adam 1e-3, batch 100, 20,000 steps. Evaluation: importance-sampled
log p(v) with the recognition network, k = 1,000. Variants: `:smoke`, `:digits`.
"""

import ml_collections

from experiments.configs import common


def smoke(c):
  c.data.name = "digits"
  c.model.num_hidden1 = 16
  c.model.num_hidden2 = 8
  common.tiny_run(c)
  c.optim.warmup_steps = 5
  c.eval.importance_samples = 20


def digits(c):
  c.data.name = "digits"
  c.model.num_hidden1 = 64
  c.model.num_hidden2 = 32
  c.train.num_steps = 5_000


def get_config(arg: str = ""):
  c = common.trainer_defaults()
  c.family = "sbn"
  c.data.transforms = ("static_binarize",)
  c.model = ml_collections.ConfigDict()
  c.model.num_hidden1 = 200
  c.model.num_hidden2 = 200
  c.model.init_scale = 0.01
  c.train.num_steps = 20_000
  c.train.sample_every = 5_000
  c.eval.importance_samples = 1_000
  c.eval.batch_size = 20
  return common.apply_variants(c, arg, {"smoke": smoke, "digits": digits})
