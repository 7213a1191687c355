"""Building blocks: MLPs and convolutional encoders/decoders (Flax linen)."""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

ACTIVATIONS = {
    "relu": nn.relu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "tanh": nn.tanh,
    "softplus": nn.softplus,
    "elu": nn.elu,
}


def activation_fn(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


class MLP(nn.Module):
  """x -> act(Dense(h_1)) -> ... -> act(Dense(h_n)) -> Dense(out_dim); flattens all but axis 0."""
  hidden: Sequence[int]
  out_dim: int
  activation: str = "relu"

  @nn.compact
  def __call__(self, x):
    act = activation_fn(self.activation)
    x = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      x = act(nn.Dense(width)(x))
    return nn.Dense(self.out_dim)(x)


class ConvEncoder(nn.Module):
  """Stride-2 3x3 convolutions (one per entry of `channels`), then Dense(out_dim)."""
  channels: Sequence[int]
  out_dim: int
  activation: str = "relu"

  @nn.compact
  def __call__(self, x):
    act = activation_fn(self.activation)
    for width in self.channels:
      x = act(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")(x))
    return nn.Dense(self.out_dim)(x.reshape(x.shape[0], -1))


class MLPDecoder(nn.Module):
  """z -> MLP -> (batch, *output_shape)."""
  hidden: Sequence[int]
  output_shape: Sequence[int]
  activation: str = "relu"

  @nn.compact
  def __call__(self, z):
    out = MLP(self.hidden, math.prod(self.output_shape), self.activation)(z)
    return out.reshape((z.shape[0], *self.output_shape))


class ConvDecoder(nn.Module):
  """z -> Dense -> feature map at 1/2^n resolution -> n stride-2 transposed convs -> 3x3 conv.

  `output_shape` is (H, W, C, P): P numbers per pixel channel for the likelihood.
  """
  channels: Sequence[int]
  output_shape: Sequence[int]
  activation: str = "relu"

  @nn.compact
  def __call__(self, z):
    act = activation_fn(self.activation)
    height, width, num_channels, num_params = self.output_shape
    factor = 2 ** len(self.channels)
    h0, w0 = -(-height // factor), -(-width // factor)
    widths = list(reversed(self.channels))
    x = act(nn.Dense(h0 * w0 * widths[0])(z)).reshape(z.shape[0], h0, w0, widths[0])
    for w in widths:
      x = act(nn.ConvTranspose(w, (3, 3), strides=(2, 2), padding="SAME")(x))
    x = nn.Conv(num_channels * num_params, (3, 3), padding="SAME")(x)[:, :height, :width]
    return x.reshape((z.shape[0], height, width, num_channels, num_params))


ENCODERS = {"mlp": lambda sizes, out_dim, act: MLP(sizes, out_dim, act),
            "conv": lambda sizes, out_dim, act: ConvEncoder(sizes, out_dim, act)}
DECODERS = {"mlp": lambda sizes, shape, act: MLPDecoder(sizes, shape, act),
            "conv": lambda sizes, shape, act: ConvDecoder(sizes, shape, act)}


def make_encoder(kind: str, sizes: Sequence[int], out_dim: int, activation: str = "relu"):
  """An encoder by name: "mlp" (sizes = hidden widths) or "conv" (sizes = channels)."""
  if kind not in ENCODERS:
    raise ValueError(f"unknown network {kind!r}; choose one of {sorted(ENCODERS)}")
  return ENCODERS[kind](tuple(sizes), out_dim, activation)


def make_decoder(kind: str, sizes: Sequence[int], output_shape: Sequence[int],
                 activation: str = "relu"):
  """A decoder by name, mirroring `make_encoder` (sizes listed from the encoder's side)."""
  if kind not in DECODERS:
    raise ValueError(f"unknown network {kind!r}; choose one of {sorted(DECODERS)}")
  sizes = tuple(sizes) if kind == "conv" else tuple(reversed(tuple(sizes)))
  return DECODERS[kind](sizes, tuple(output_shape), activation)


def split_gaussian(h):
  """Splits the last axis into (mean, log_var) halves."""
  mean, log_var = jnp.split(h, 2, axis=-1)
  return mean, log_var
