"""DCGAN on mnist5k (28x28): as gan_digits.py with z 64-D, 64 base channels (7x7x128 -> 14x14x64
-> 28x28), 3,000 steps. Expected results: README's GAN table (`python -m experiments.gan
--workdir=DIR --config=experiments/configs/gan_mnist5k.py[:conditional]`). Variants:
`:conditional`, `:smoke` (on digits).
"""

from __future__ import annotations

from experiments.configs import common, gan_digits


def get_config(arg: str = ""):
  c = gan_digits.image_config()
  c.data.name = "mnist5k"
  c.model.latent_dim = 64
  c.model.channels = 64
  c.train.num_steps = 3_000
  c.train.checkpoint_every = 1_000
  c.train.sample_every = 1_000
  variants = {**gan_digits.VARIANTS, "smoke": common.smoke_on_digits(gan_digits.smoke)}
  return common.apply_variants(c, arg, variants)
