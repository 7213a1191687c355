"""A Gaussian mixture on dequantized 8-bit images by EM, the classical density baseline: digits
(8x8), K = 10 full-covariance components on the 64 pixels y = (k + u) / 256 (u drawn once per
image), reg_covar 1e-6, k-means++ start, each EM iteration one pass over the 1,500 training
images in global batches of 500. eval.json: the dequantization bound on the test images'
log P(k) (`nll`, `nll_bpd`), on the flows' and diffusion models' scale. Expected result:
README's mixtures table (`python -m experiments.mixtures --workdir=DIR
--config=experiments/configs/mixtures_digits.py`). Variants: `mnist5k` (28x28, 4,500 training
images in batches of 900, K = 10 diagonal components: a full 784 x 784 covariance per component
from ~450 images is singular), `smoke`.
"""

from __future__ import annotations

from experiments.configs import common
from experiments.configs.mixtures_2d import mixture_defaults, tiny_mixture


def mnist5k(c):
  c.data.name = "mnist5k"
  c.model.covariance_type = "diag"
  c.model.reg_covar = 1e-4
  c.train.batch_size = 900


def smoke(c):
  common.tiny_run(c)
  tiny_mixture(c, num_components=3, init_points=300)   # 1,500 images: 13 EM iterations
  c.eval.num_examples = 100


def get_config(arg: str = ""):
  c = common.trainer_defaults()
  c.family = "mixtures"
  c.data.name = "digits"
  c.data.transforms = ()
  mixture_defaults(c)
  c.model.num_components = 10
  c.train.batch_size = 500
  c.train.num_steps = 900       # at most 300 EM iterations
  c.train.log_every = 3
  c.train.checkpoint_every = 300
  c.train.sample_every = 0
  c.eval.batch_size = 500
  return common.apply_variants(c, arg, {"mnist5k": mnist5k, "smoke": smoke})
