"""A multi-scale Glow on dequantized mnist5k (28x28 grey 8-bit images), trained by maximum
likelihood; test bound in bits/dim on the 500 test images.

2 levels (28 -> 14 -> 7 px) of 4 steps (actnorm, LU 1x1 convolution, affine coupling with a
3x3-1x1-3x3 conv net of 64 channels), half the channels factored out after level 1, logit
preprocessing (α = 0.05), uniform dequantization; Adam 1e-3 with warm-up and cosine decay,
global batch 64, 5,000 steps. Published RealNVP/Glow MNIST figures (about 1.05 bits/dim) are
for 60,000 training images, and are not comparable. Expected result: README's flow table
(`python -m experiments.flows --workdir=DIR --config=experiments/configs/flows_mnist5k.py`).
Variants: `:variational` (variational dequantization), `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def image_model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.levels = 2  # squeezes: H and W must be divisible by 2^levels
  m.steps = 4  # steps of flow per level
  m.hidden_channels = 64  # coupling networks
  m.lu = True  # LU-parameterised 1x1 convolutions (False: the plain matrix, slogdet)
  m.dequantization = "uniform"  # uniform | variational
  m.init_examples = 256  # training images for the ActNorm layers' data-dependent init
  return m


def image_config() -> ml_collections.ConfigDict:
  c = common.trainer_defaults()
  c.family = "flows"
  c.data.transforms = ()  # the loss dequantizes the 8-bit images
  c.model = image_model_defaults()
  c.train.batch_size = 64
  c.train.num_steps = 10_000
  c.train.log_every = 100
  c.train.checkpoint_every = 1_000
  c.train.sample_every = 2_500
  c.optim.grad_clip_norm = 50.0
  return c


def variational(c):
  c.model.dequantization = "variational"


def smoke(c):
  c.model.steps = 1
  c.model.hidden_channels = 8
  c.model.init_examples = 32
  common.tiny_run(c)
  c.optim.warmup_steps = 5
  c.eval.num_examples = 64


def get_config(arg: str = ""):
  c = image_config()
  c.data.name = "mnist5k"
  c.train.num_steps = 5_000
  return common.apply_variants(c, arg, {"variational": variational, "smoke": smoke})
