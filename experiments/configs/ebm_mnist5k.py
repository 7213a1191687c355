"""A convolutional energy-based model on mnist5k (28x28), as ebm_digits.py with a conv energy
32-64-64, global batch 64, buffer 6,400 and 1,000 steps; AIS over [0, 1]^784. Expected results:
README's EBM table (`python -m experiments.ebm --workdir=DIR
--config=experiments/configs/ebm_mnist5k.py`). Variants: `:smoke` (on digits).
"""

from __future__ import annotations

from experiments.configs import common, ebm_digits


def smoke(c):
  ebm_digits.smoke(c)
  c.data.name = "digits"


def get_config(arg: str = ""):
  c = ebm_digits.image_config()
  c.data.name = "mnist5k"
  c.model.channels = (32, 64, 64)
  c.train.batch_size = 64
  c.train.buffer_size = 6_400
  c.train.num_steps = 1_000
  c.train.checkpoint_every = 250
  c.train.sample_every = 500
  return common.apply_variants(c, arg, {"smoke": smoke})
