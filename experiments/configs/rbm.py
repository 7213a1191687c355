"""Bernoulli RBM with 500 hidden units, PCD-1, on statically binarized mnist5k.

SGD with momentum 0.9, learning rate 0.01 decayed by cosine, batch 100 (global), weight
decay 1e-4 through AdamW off (plain SGD), 20,000 steps (~444 epochs). Evaluation: AIS
with 100 chains and the standard 14,501 temperatures. Variants: `:smoke`, `:digits`.
"""

import ml_collections

from experiments.configs import common


def smoke(c):
  c.data.name = "digits"
  c.model.num_hidden = 16
  common.tiny_run(c)
  c.optim.warmup_steps = 0
  c.eval.ais_chains = 16
  c.eval.sample_gibbs_steps = 50


def digits(c):
  c.data.name = "digits"
  c.model.num_hidden = 16
  c.train.num_steps = 5_000


def get_config(arg: str = ""):
  c = common.trainer_defaults()
  c.family = "rbm"
  c.data.transforms = ("static_binarize",)
  c.model = ml_collections.ConfigDict()
  c.model.num_hidden = 500
  c.model.visible = "bernoulli"  # bernoulli | gaussian (unit variance, z-scored pixels)
  c.model.min_pixel_std = 1e-3  # floor on the per-pixel std that z-scores Gaussian units
  c.model.method = "pcd"  # cd | pcd
  # pcd: chains kept as hidden states (5 products a PCD-1 step, as scikit-learn) | visible
  # states (Tieleman 2008: 6 products; dbm.py's weight-doubled modules need it).
  c.model.persistent_state = "hidden"
  c.model.k = 1
  c.model.init_scale = 0.01
  c.model.monitors = True  # log reconstruction error and pseudo-likelihood every step
  # Tied copies of each visible / hidden unit (2 = the weight-doubled modules of a DBM).
  c.model.visible_copies = 1
  c.model.hidden_copies = 1
  c.train.num_steps = 20_000
  c.train.ema_decay = 0.0
  c.train.sample_every = 5_000
  c.train.steps_per_call = 50  # a PCD step is ~4 ms here: one dispatch per 50 steps
  c.optim.name = "sgd"
  c.optim.b1 = 0.9
  c.optim.learning_rate = 0.01
  c.optim.warmup_steps = 0
  c.optim.final_lr_fraction = 0.0
  c.optim.grad_clip_norm = 0.0
  c.eval.ais_chains = 100
  c.eval.sample_gibbs_steps = 1000
  return common.apply_variants(c, arg, {"smoke": smoke, "digits": digits})
