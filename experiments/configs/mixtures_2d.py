"""A Gaussian mixture on 2-D points by EM: K = 8 full-covariance components (eight_gaussians
by default; a variant per 2-D density, `model.num_components` for K), k-means++ start on 5,000
training points, reg_covar 1e-6, each EM iteration one pass over the 50,000 training points in
global batches of 10,000 (5 steps), until the mean log-likelihood changes by less than
`em.tol` or `train.num_steps` / 5 iterations. `model.kind="gradient"` fits the same mixture by
Adam on the NLL instead (the seed's route). eval.json: the exact test `nll` beside `data_nll`,
BIC/AIC on the training points, and EM's log-likelihood per iteration. Expected results:
README's mixtures table (`python -m experiments.mixtures --workdir=DIR
--config=experiments/configs/mixtures_2d.py:<density> --config.model.num_components=K`).
Variants: one per 2-D density, `gradient`, and `smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def mixture_defaults(c: ml_collections.ConfigDict):
  """The model and EM settings every mixture config has."""
  c.model = ml_collections.ConfigDict()
  c.model.kind = "em"                  # em | gradient
  c.model.num_components = 8
  c.model.covariance_type = "full"     # full | diag | spherical | tied
  c.model.reg_covar = 1e-6
  c.model.init = "kmeans++"            # kmeans++ | kmeans | random
  c.model.init_points = 5_000          # training points the start is computed on
  c.em = ml_collections.ConfigDict()
  c.em.tol = 1e-5                      # stop when the mean log-likelihood changes by less
  c.train.ema_decay = 0.0              # the fitted mixture itself, not an average
  c.optim.warmup_steps = 0
  c.optim.grad_clip_norm = 0.0
  c.optim.final_lr_fraction = 1.0
  c.optim.learning_rate = 1e-2


def gradient(c: ml_collections.ConfigDict):
  """The seed's route: Adam 1e-2 on the NLL, batch 1,000, 20,000 steps (400 passes)."""
  c.model.kind = "gradient"
  c.train.batch_size = 1_000
  c.train.num_steps = 20_000
  c.train.log_every = 200
  c.train.checkpoint_every = 5_000


def tiny_mixture(c: ml_collections.ConfigDict, num_components: int, init_points: int):
  """The model part of every mixture `:smoke`: K components started on a few points, passes
  in global batches of 500 (`common.tiny_run`'s 40 steps: 40 / (N / 500) EM iterations)."""
  c.model.num_components = num_components
  c.model.init_points = init_points
  c.train.batch_size = 500
  c.optim.warmup_steps = 0


def smoke(c: ml_collections.ConfigDict):
  common.points_smoke(c)
  tiny_mixture(c, num_components=4, init_points=500)   # 2,000 points: 10 EM iterations


def get_config(arg: str = ""):
  c = common.points_config("mixtures")
  mixture_defaults(c)
  c.train.batch_size = 10_000
  c.train.num_steps = 1_000
  c.train.log_every = 5
  c.train.checkpoint_every = 100
  c.train.sample_every = 0
  c.eval.batch_size = 10_000
  return common.apply_variants(c, arg, {**common.density_variants(), "gradient": gradient,
                                        "smoke": smoke})
