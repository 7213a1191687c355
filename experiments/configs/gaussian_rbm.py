"""Gaussian–Bernoulli RBM (unit-variance visible units on per-pixel z-scores) on scikit-learn's
8x8 digits, uniformly dequantized to a continuous density on [0, 1]^64; 20 hidden units,
PCD-1, SGD with momentum at 0.005, 20,000 steps. Scored exactly: log Z by enumerating the
2^20 hidden states; test log-likelihood in nats of the [0, 1] pixel space, beside diagonal
and full-covariance Gaussians fitted to the same training split.

Expected (2-core CPU, ~70 s): test log-likelihood 56.87 nats (at learning rate 0.001:
54.43); diagonal Gaussian 47.29, full-covariance Gaussian 66.92. Variant: `:smoke`.
"""

from experiments.configs import common, rbm


def smoke(c):
  c.model.num_hidden = 8
  common.tiny_run(c)
  c.eval.sample_gibbs_steps = 20


def get_config(arg: str = ""):
  c = rbm.get_config()
  c.data.name = "digits"
  c.data.transforms = ("uniform_dequantize",)
  c.model.visible = "gaussian"
  c.model.num_hidden = 20
  c.optim.learning_rate = 0.005
  c.train.num_steps = 20_000
  return common.apply_variants(c, arg, {"smoke": smoke})
