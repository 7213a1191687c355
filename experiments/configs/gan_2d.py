"""A GAN on 2-D points (PacGAN's mode-coverage benchmarks by default: ring_of_gaussians, 8 modes
of std 0.01 on the unit circle; grid_of_gaussians, 25 modes of std 0.05), MLP players
(generator 128-128-128 from a 2-D Gaussian z, discriminator 128-128-128 LeakyReLU), the hinge
loss (the best of the five losses in README's 5-seed sweep), one critic update per generator
update, Adam 1e-3 β = (0.5, 0.999) for both players, global batch 256, 10,000 steps; eval.json has PacGAN's `modes_captured`,
`high_quality_fraction` and `reverse_kl` on 2,500 samples. `gan.loss`, `gan.pack`,
`gan.critic_steps`, `gan.gradient_penalty`, `gan.r1`, `gan.clip` and `model.spectral_norm` pick
the variant. Expected results: README's GAN table (`python -m experiments.gan --workdir=DIR
--config=experiments/configs/gan_2d.py:<density> --config.gan.loss=<loss>`). Variants: one
per 2-D density (ring_of_gaussians by default) and `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def gan_defaults(c: ml_collections.ConfigDict):
  """The game's settings every GAN config has."""
  c.gan = ml_collections.ConfigDict()
  c.gan.loss = "non_saturating"   # minimax | non_saturating | wasserstein | hinge | least_squares
  c.gan.critic_steps = 1          # discriminator updates per generator update
  c.gan.pack = 1                  # PacGAN: examples per discriminator input
  c.gan.gradient_penalty = 0.0    # WGAN-GP λ
  c.gan.r1 = 0.0                  # R1 γ
  c.gan.clip = 0.0                # > 0: WGAN weight clipping
  c.optim.warmup_steps = 0
  c.optim.final_lr_fraction = 1.0  # constant learning rates
  c.optim.grad_clip_norm = 0.0
  c.optim.generator = ml_collections.ConfigDict({"learning_rate": 1e-4, "b1": 0.5})
  c.optim.discriminator = ml_collections.ConfigDict({"learning_rate": 1e-4, "b1": 0.5})
  c.eval.num_samples = 0
  c.eval.sample_batch_size = 250


def model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.kind = "mlp"                  # mlp | dcgan
  m.latent_dim = 2
  m.generator_sizes = (128, 128, 128)
  m.discriminator_sizes = (128, 128, 128)
  m.spectral_norm = False
  m.channels = 64                 # dcgan
  m.num_classes = 0               # dcgan: > 0 class-conditional
  return m


def smoke(c):
  c.model.generator_sizes = (16,)
  c.model.discriminator_sizes = (16,)
  common.points_smoke(c)
  c.optim.warmup_steps = 0


def get_config(arg: str = ""):
  c = common.points_config("gan")
  c.data.name = "ring_of_gaussians"
  c.model = model_defaults()
  c.train.num_steps = 10_000
  c.train.checkpoint_every = 2_500
  c.train.sample_every = 2_500
  gan_defaults(c)
  c.gan.loss = "hinge"
  c.optim.generator.learning_rate = 1e-3
  c.optim.discriminator.learning_rate = 1e-3
  return common.apply_variants(c, arg, {**common.density_variants(), "smoke": smoke})
