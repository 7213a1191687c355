"""Autoregressive models on dynamically binarized mnist5k (28x28, 784 binary pixels in raster
order), trained by maximum likelihood; the exact test NLL in nats on the 500 test images
(binarized once, as for the VAE, RBM and DBM rows).

`model.kind` picks the model (every kind has its settings below): fixed_order (the thesis's MLP
over the previous `context` pixels), fvsbn, nade, made, gru and lstm (the thesis's RNN over
pixels), pixelcnn (default: gated, no blind spot), transformer. The variant `:8bit` models the 8-bit pixels instead (data.transforms=(),
kind pixelcnn_pp: the discretized logistic mixture; or transformer_8bit) and reports bits/dim.
Adam 1e-3 with warm-up and cosine decay, global batch 64, 5,000 steps. Expected results:
README's autoregressive table (`python -m experiments.results`, each run made with
`python -m experiments.autoregressive --workdir=DIR
--config=experiments/configs/autoregressive_mnist5k.py --config.model.kind=<kind>`).
Variants: `:8bit`, `:conditional` (class-conditional on the 10 digit labels), `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  # fixed_order | fvsbn | nade | made | gru | lstm | pixelcnn | transformer (binary images);
  # pixelcnn_pp | transformer_8bit (8-bit images)
  m.kind = "pixelcnn"
  m.context = 56              # fixed_order: previous pixels seen (two rows of 28)
  m.window_hidden_sizes = (128,)  # fixed_order: the MLP shared by every position
  m.hidden_sizes = (1024,)    # made (a MADE needs every layer >= D - 1 wide)
  m.num_masks = 1             # made: > 1 orderings (order-agnostic training, ensemble at test time)
  m.hidden_size = 500         # nade
  m.rnn_hidden_size = 128     # gru, lstm
  m.channels = 32             # pixelcnn, pixelcnn_pp: feature maps of both stacks
  m.num_layers = 5            # pixelcnn, pixelcnn_pp: gated layers; transformer: blocks
  m.num_mixtures = 5          # pixelcnn_pp: logistics per pixel
  m.num_heads = 4             # transformer
  m.embed_dim = 64            # transformer
  m.num_classes = 0           # > 0: class-conditional (pixelcnn, pixelcnn_pp, transformers; `:conditional`)
  return m


def image_config() -> ml_collections.ConfigDict:
  c = common.trainer_defaults()
  c.family = "autoregressive"
  c.data.transforms = ("dynamic_binarize",)
  c.model = model_defaults()
  c.train.batch_size = 64
  c.train.num_steps = 5_000
  c.train.log_every = 100
  c.train.checkpoint_every = 1_000
  c.train.sample_every = 2_500
  c.eval.batch_size = 100
  return c


def eight_bit(c):
  c.data.transforms = ()
  c.model.kind = "pixelcnn_pp"


def smoke(c):
  c.model.context = 4
  c.model.window_hidden_sizes = (16,)
  c.model.hidden_sizes = (64,)
  c.model.hidden_size = 16
  c.model.rnn_hidden_size = 16
  c.model.channels = 8
  c.model.num_layers = 1
  c.model.num_mixtures = 2
  c.model.num_heads = 2
  c.model.embed_dim = 16
  common.tiny_run(c)
  c.data.name = "digits"
  c.train.sample_every = 0
  c.optim.warmup_steps = 5
  c.eval.num_examples = 64


def conditional(c):
  c.model.num_classes = 10


VARIANTS = {"8bit": eight_bit, "conditional": conditional, "smoke": smoke}


def get_config(arg: str = ""):
  c = image_config()
  c.data.name = "mnist5k"
  return common.apply_variants(c, arg, VARIANTS)
