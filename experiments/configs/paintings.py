"""The picture-folder models of `experiments.paintings`, for 8-bit RGB squares (32x32 or 64x64):

- `vae`: the convolutional VAE (channels 32, 64; z 64) with a discretized Gaussian decoder on
  the 256-level grid (data scaled to [-1, 1], not dequantized), so its IWAE bound is a bound on
  the same discrete log-likelihood as the others; Adam 1e-3, batch 64;
- `pixelcnn_pp`: the gated PixelCNN with PixelCNN++'s discretized logistic mixture over the RGB
  channels of a pixel (channels 32, 5 gated layers, 5 logistics), batch 32;
- `ddpm`: the DDPM U-Net (16 channels, x1 x2 x2, attention at 8 px), v target (Salimans & Ho
  2022), L_simple on v, T = 1000, the discretized decoder at t = 1; samples with DDIM-50; batch
  32. With the ε target and these steps the samples came out as flat saturated colours (the
  ε-network's small error in a channel's mean at high noise becomes a large error in x̂_0 =
  (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, and the reverse chain never pulls it back, clipping x̂_0 or not); the
  v-network predicts x̂_0 = √ᾱ_t x_t − √(1−ᾱ_t) v̂ directly at high noise. On the photo-tile
  folder v gave photo-like samples and ε a tighter bound with unusable samples (both runs in
  README's paintings section).

The step counts fit the three trainings, their evaluations and the sampling of the command into
the 45 minutes the issue allows on the 2-core CPU (PixelCNN++ draws a sample in 1,024 network
passes, so it trains for fewer steps).

All three report bits/dim of the held-out squares on one scale (negative log2 probability of
the 8-bit pixels per dimension: exact for PixelCNN++, an upper bound for the VAE (IWAE) and the
DDPM (the full variational bound)). No FID network is run in training (no default one exists for
a user's folder); `experiments.paintings` computes FID/KID when given Inception weights.

Usage: `experiments/configs/paintings.py:<model>[,smoke][,size64]`; `experiments.paintings`
sets data.path. Expected results (the photo-tile folder at 32x32, steps below): README's
paintings table, made with the command above it; the times there are for the whole command.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import autoregressive_mnist5k, common, diffusion, vae


def use_folder(c: ml_collections.ConfigDict, transforms: tuple, batch_size: int, num_steps: int):
  """What the three share: the prepared folder, checkpoints every 500 steps, no figures during
  training (the command samples at the end)."""
  c.data.name = "prepared_folder"
  c.data.path = ""  # set by experiments.paintings: WORKDIR/data/examples_<size>.npz
  c.data.transforms = transforms
  c.train.batch_size = batch_size
  c.train.num_steps = num_steps
  c.train.sample_every = 0
  c.train.checkpoint_every = 500


def vae_config() -> ml_collections.ConfigDict:
  c = vae.get_config()
  use_folder(c, ("scale_to_symmetric",), 64, 1_500)
  c.model.network = "conv"
  c.model.sizes = (32, 64)
  c.model.latent_dim = 64
  c.model.likelihood = "discretized_gaussian"
  c.eval.iwae_samples = 500
  c.eval.iwae_chunk_size = 250
  c.eval.iwae_batch_size = 25
  return c


def pixelcnn_pp_config() -> ml_collections.ConfigDict:
  c = autoregressive_mnist5k.get_config("8bit")
  use_folder(c, (), 32, 800)
  c.model.channels = 32
  c.model.num_layers = 5
  c.model.num_mixtures = 5
  c.eval.batch_size = 50
  return c


def ddpm_config() -> ml_collections.ConfigDict:
  c = diffusion.get_config()
  use_folder(c, ("scale_to_symmetric",), 32, 2_500)
  c.model.channels = 16
  c.model.channel_mults = (1, 2, 2)
  c.model.attention_resolutions = (8,)
  c.model.target = "v"
  c.eval.bound_examples = 50
  c.eval.num_fid_samples = 0
  return c


MODELS = {"vae": vae_config, "pixelcnn_pp": pixelcnn_pp_config, "ddpm": ddpm_config}


def smoke(c):
  """A few steps of tiny networks (tests): seconds per model."""
  common.tiny_run(c)
  c.train.num_steps = 6
  c.train.batch_size = 8
  c.train.log_every = 3
  c.train.checkpoint_every = 6
  c.train.sample_every = 0
  c.optim.warmup_steps = 2
  c.eval.num_examples = 8
  if c.family == "autoencoders":
    c.model.sizes = (8, 8)
    c.model.latent_dim = 4
    c.eval.iwae_samples = 4
    c.eval.iwae_chunk_size = 4
    c.eval.iwae_batch_size = 8
  elif c.family == "autoregressive":
    c.model.channels = 8
    c.model.num_layers = 1
    c.model.num_mixtures = 2
    c.eval.batch_size = 8
  else:
    c.model.num_timesteps = 20
    c.model.channels = 8
    c.model.channel_mults = (1,)  # one level: the two-level U-Net is compiled in the DDPM smoke
    c.model.attention_resolutions = ()
    c.sample.num_steps = 5
    c.eval.bound_examples = 4


def size64(c):
  """64x64 squares: the same networks, attention (DDPM) at 16 px."""
  if c.family == "diffusion":
    c.model.attention_resolutions = (16,)


VARIANTS = {"smoke": smoke, "size64": size64}


def get_config(arg: str = "vae") -> ml_collections.ConfigDict:
  model, _, variants = arg.partition(",")
  if model not in MODELS:
    raise ValueError(f"unknown paintings model {model!r}; choose one of {sorted(MODELS)}")
  c = MODELS[model]()
  return common.apply_variants(c, variants, VARIANTS) if variants else c
