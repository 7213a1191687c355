"""Deep Boltzmann machine 784-500-500 on statically binarized mnist5k, trained jointly from
small random weights (no pre-training): mean field (5 iterations) for the data phase, one
Gibbs sweep of 100 persistent chains for the model phase, SGD with momentum 0.9 at 0.005,
10,000 steps. Evaluation: AIS log Z (100 chains, 14,501 temperatures) and the mean-field
variational lower bound on the test log-likelihood. Variants: `:smoke`, `:digits`.
"""

import ml_collections

from experiments.configs import common


def smoke(c):
  c.data.name = "digits"
  c.model.num_hidden1 = 16
  c.model.num_hidden2 = 8
  common.tiny_run(c)
  c.eval.ais_chains = 16
  c.eval.sample_gibbs_steps = 20


def digits(c):
  c.data.name = "digits"
  c.model.num_hidden1 = 32
  c.model.num_hidden2 = 16
  c.train.num_steps = 5_000


def get_config(arg: str = ""):
  c = common.trainer_defaults()
  c.family = "dbm"
  c.data.transforms = ("static_binarize",)
  c.model = ml_collections.ConfigDict()
  c.model.num_hidden1 = 500
  c.model.num_hidden2 = 500
  c.model.init_scale = 0.01
  c.model.mean_field_iters = 5
  c.model.gibbs_steps = 1
  c.train.num_steps = 10_000
  c.train.ema_decay = 0.0
  c.train.sample_every = 5_000
  c.optim.name = "sgd"
  c.optim.b1 = 0.9
  c.optim.learning_rate = 0.005
  c.optim.warmup_steps = 0
  c.optim.final_lr_fraction = 0.0
  c.optim.grad_clip_norm = 0.0
  c.eval.ais_chains = 100
  c.eval.mean_field_iters = 30
  c.eval.sample_gibbs_steps = 1000
  return common.apply_variants(c, arg, {"smoke": smoke, "digits": digits})
