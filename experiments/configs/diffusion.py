"""DDPM (Ho et al. 2020) on mnist5k: ε target, L_simple, linear β over T = 1000 steps; the
diffusion family's defaults, which the other diffusion configs import and override.

U-Net with 16 base channels (×1, ×2, ×2 at 28, 14, 7 px), one residual block per level,
attention at 7x7 (283k parameters); Adam 1e-3, global batch 32, 6,000 steps; samples with
DDIM-50 (η = 0). At the end: the full variational bound on 100 test images (bits/dim) and
FID/KID (mnist5k_cls features) of 1,000 samples. Expected result: in the README's diffusion
table (measured with `python -m experiments.diffusion --workdir=DIR`). Variants: `:smoke`
(digits, 40 steps, T = 50, under a minute), `:digits`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.process = "ddpm"  # ddpm | sde | vdm
  # ddpm
  m.num_timesteps = 1000
  m.schedule = "linear"  # linear | cosine
  m.target = "eps"  # eps | x0 | v | mean
  m.loss_type = "simple"  # simple | weighted_mse | vlb
  m.variance = "small"  # small (β̃_t) | large (β_t)
  m.decoder = "discretized"  # discretized (8-bit images) | gaussian
  # sde
  m.sde = "vp"  # vp | ve
  m.beta_min = 0.1
  m.beta_max = 20.0
  m.sigma_min = 0.01
  m.sigma_max = 50.0
  # vdm
  m.gamma_min = -13.3
  m.gamma_max = 5.0
  m.gamma_hidden = 1024
  m.variance_gradient = True  # train γ_η to minimise the variance of the diffusion loss
  # conditioning (classifier-free guidance)
  m.num_classes = 0  # 0: unconditional
  m.label_drop_probability = 0.1
  # network
  m.network = "unet"  # unet | mlp
  m.channels = 16
  m.channel_mults = (1, 2, 2)
  m.num_res_blocks = 1
  m.attention_resolutions = (7,)
  m.num_heads = 1
  m.mlp_hidden = 256
  m.mlp_layers = 3
  return m


def sample_defaults() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict()
  s.sampler = "ddim"  # ddpm: ddpm | ddim; sde: pc | euler_maruyama | ode; vdm: ancestral
  s.num_steps = 50  # ddim, sde and vdm samplers
  s.eta = 0.0  # ddim
  s.guidance_weight = 0.0  # conditional models: ε̃ = (1 + w) ε(x, c) − w ε(x, ∅)
  s.corrector_steps = 1  # pc
  s.snr = 0.16  # pc
  return s


def smoke(c):
  c.data.name = "digits"
  c.model.num_timesteps = 50
  c.model.channel_mults = (1, 2)
  c.model.attention_resolutions = (4,)
  c.model.channels = 8
  c.sample.num_steps = 10
  common.tiny_run(c)
  c.optim.warmup_steps = 5
  c.eval.bound_examples = 16
  c.eval.num_fid_samples = 0


def digits(c):
  c.data.name = "digits"
  c.model.channels = 32
  c.model.channel_mults = (1, 2)
  c.model.attention_resolutions = (4,)
  c.train.batch_size = 64
  c.train.num_steps = 5_000


def points_2d(c):
  """What every 2-D density experiment shares: raw coordinates, the MLP denoiser, batch 256,
  no periodic figures, evaluation in batches of 1,000."""
  c.data.transforms = ()
  c.model.network = "mlp"
  c.train.batch_size = 256
  c.train.sample_every = 0
  c.eval.batch_size = 1_000


VARIANTS = {"smoke": smoke, "digits": digits}


def base_config() -> ml_collections.ConfigDict:
  c = common.trainer_defaults()
  c.family = "diffusion"
  c.model = model_defaults()
  c.sample = sample_defaults()
  c.data.transforms = ("scale_to_symmetric",)
  c.train.batch_size = 32
  c.train.num_steps = 6_000
  c.train.sample_every = 2_000
  c.optim.grad_clip_norm = 1.0
  c.eval.bound_examples = 100  # test examples scored with the full bound (T calls each)
  c.eval.bound_draws = 16  # vdm: (t, ε) draws per example in its bound
  c.eval.likelihood_examples = 2_000  # sde: test points scored by the probability-flow ODE
  c.eval.ode_steps = 200  # RK4 steps of the ODE likelihood
  c.eval.exact_divergence_max_dims = 16  # above: Hutchinson's estimator
  c.eval.num_fid_samples = 1_000
  c.eval.sample_batch_size = 250
  return c


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  return common.apply_variants(base_config(), arg, VARIANTS)
