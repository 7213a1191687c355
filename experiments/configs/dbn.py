"""Deep belief net 784-500-500 on statically binarized mnist5k, trained greedily with PCD-1
RBMs (the settings of rbm.py, 10,000 steps per layer). Evaluation: AIS log Z of the top
RBM, the variational bound and its importance-weighted estimate (k = 100) on the 500 test
digits. Variants: `:smoke` (digits, 16-8 units, seconds), `:digits`.
"""

import ml_collections

from experiments.configs import common, rbm


def smoke(c):
  c.data.name = "digits"
  c.model.layer_sizes = (16, 8)
  common.tiny_run(c)
  c.train.sample_every = 0
  c.eval.ais_chains = 16
  c.eval.importance_samples = 10
  c.eval.sample_gibbs_steps = 20


def digits(c):
  c.data.name = "digits"
  c.model.layer_sizes = (32, 16)
  c.train.num_steps = 5_000


def get_config(arg: str = ""):
  base = rbm.get_config()
  c = ml_collections.ConfigDict(base.to_dict())
  c.family = "dbn"
  c.rbm = ml_collections.ConfigDict(base.model.to_dict())
  c.model = ml_collections.ConfigDict()
  c.model.layer_sizes = (500, 500)
  c.train.num_steps = 10_000
  c.eval.importance_samples = 100
  c.eval.batch_size = 50
  return common.apply_variants(c, arg, {"smoke": smoke, "digits": digits})
