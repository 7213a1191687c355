"""DCGAN on scikit-learn's 8x8 digits (images in [0, 1]): generator z (32-D) -> 2x2x64 ->
transposed convolutions with BatchNorm -> 8x8 sigmoid; discriminator two stride-2 4x4
convolutions (32, 64) with LeakyReLU; the non-saturating loss, Adam 2e-4 β = (0.5, 0.999) for both
players, global batch 64, 3,000 steps. `:conditional` makes both players class-conditional (a
label embedding concatenated to z; a projection discriminator) and draws a row per class.
eval.json: FID/KID/precision/recall of 1,000 samples in the digits classifier's features.
Expected results: README's GAN table (`python -m experiments.gan --workdir=DIR
--config=experiments/configs/gan_digits.py[:conditional]`). Variants: `:conditional`, `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common, gan_2d


def image_config() -> ml_collections.ConfigDict:
  c = common.trainer_defaults()
  c.family = "gan"
  c.data.transforms = ()
  c.model = gan_2d.model_defaults()
  c.model.kind = "dcgan"
  c.model.latent_dim = 32
  c.model.channels = 32
  gan_2d.gan_defaults(c)
  c.optim.generator.learning_rate = 2e-4
  c.optim.discriminator.learning_rate = 2e-4
  c.train.batch_size = 64
  c.eval.num_samples = 1_000
  return c


def conditional(c):
  c.model.num_classes = 10


def smoke(c):
  c.model.channels = 4
  c.model.latent_dim = 4
  c.eval.num_samples = 0
  common.tiny_run(c)


VARIANTS = {"conditional": conditional, "smoke": smoke}


def get_config(arg: str = ""):
  c = image_config()
  c.data.name = "digits"
  c.train.num_steps = 3_000
  c.train.checkpoint_every = 1_000
  c.train.sample_every = 1_000
  return common.apply_variants(c, arg, VARIANTS)
