"""Building blocks: MLPs, convolutional encoders/decoders and GroupNorm (Flax linen)."""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


# SUBPIXEL_TAPS[phase, tap, r]: the 3-tap kernel row r that output phase `phase` (even or odd
# output row 2i + phase) applies to input row i - 1 + tap. A stride-2 "SAME" transposed
# convolution is y[2i] = k[0] x[i-1] + k[2] x[i] and y[2i+1] = k[1] x[i] along each axis.
SUBPIXEL_TAPS = np.array([[[1, 0, 0], [0, 0, 1]], [[0, 0, 0], [0, 1, 0]]], np.float32)


def subpixel_kernel(kernel):
  """(3, 3, C_in, C_out) transposed-convolution kernel -> (2, 2, C_in, 4 C_out) kernel of the
  equivalent stride-1 convolution whose output channels are the 2x2 output phases (p, q, c):
  K'[a, b, i, (p, q, o)] = Σ_rs S[p, a, r] S[q, b, s] K[r, s, i, o]."""
  taps = jnp.asarray(SUBPIXEL_TAPS, kernel.dtype)
  merged = jnp.einsum("par,qbs,rsio->abipqo", taps, taps, kernel)
  return merged.reshape(2, 2, kernel.shape[2], 4 * kernel.shape[3])


def depth_to_space(x, block: int = 2):
  """(B, H, W, block·block·C) with channels ordered (p, q, c) -> (B, block·H, block·W, C)."""
  b, height, width, channels = x.shape
  c = channels // block**2
  x = x.reshape(b, height, width, block, block, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, block * height, block * width, c)


class SubpixelConvTranspose(nn.Module):
  """`nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding="SAME")` computed as a sub-pixel
  convolution: pad one row and column before, a 2x2 stride-1 convolution to 4·features
  channels (`subpixel_kernel`), then depth-to-space. Same function, same parameters (`kernel`
  (3, 3, C_in, features), `bias`) and initialisation; XLA's CPU backend computes its kernel
  gradient as an ordinary convolution instead of a dilated one, several times faster."""
  features: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (3, 3, x.shape[-1], self.features))
    bias = self.param("bias", self.bias_init, (self.features,))
    y = jax.lax.conv_general_dilated(x, subpixel_kernel(kernel).astype(x.dtype), (1, 1),
                                     ((1, 0), (1, 0)), dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return depth_to_space(y) + bias


class GroupNorm(nn.Module):
  """`nn.GroupNorm(num_groups)` (epsilon 1e-6, its fast variance) for channels-last images,
  computed as one per-(example, channel) affine map: with μ_g = E[x], σ²_g = E[x²] − μ_g² over
  each group's positions and channels,
      y = x · a + d,  a = γ / √(σ²_g + ε),  d = β − μ_g · a.
  Same function within float32 rounding, same parameters (`scale` γ, `bias` β) and names;
  XLA's CPU backend runs its statistics as two sums over the positions (per channel, then per
  group) instead of a reduction over a reshaped (…, groups, channels/groups) array, and with
  its gradient this took a sixth off the mnist U-Net's forward + backward (README, Benchmark)."""
  num_groups: int
  epsilon: float = 1e-6

  @nn.compact
  def __call__(self, x):
    channels = x.shape[-1]
    if channels % self.num_groups:
      raise ValueError(f"GroupNorm: {channels} channels are not divisible into {self.num_groups} groups")
    per_group = channels // self.num_groups
    scale = self.param("scale", nn.initializers.ones, (channels,))
    bias = self.param("bias", nn.initializers.zeros, (channels,))
    positions = tuple(range(1, x.ndim - 1))
    count = math.prod(x.shape[a] for a in positions) * per_group

    def group_mean(values):  # (batch, channels) sums over positions -> (batch, groups)
      return values.reshape(x.shape[0], self.num_groups, per_group).sum(-1) / count

    mean = group_mean(jnp.sum(x, axis=positions))
    variance = jnp.maximum(group_mean(jnp.sum(x * x, axis=positions)) - mean * mean, 0.0)
    a = jnp.repeat(jax.lax.rsqrt(variance + self.epsilon), per_group, axis=-1) * scale
    d = bias - jnp.repeat(mean, per_group, axis=-1) * a
    shape = (x.shape[0],) + (1,) * len(positions) + (channels,)
    return x * a.reshape(shape) + d.reshape(shape)


# How a decoder doubles its resolution; both compute the same function with the same
# parameters (`SubpixelConvTranspose`), "subpixel" several times faster on XLA's CPU backend.
UPSAMPLERS = {
    "subpixel": lambda features, name: SubpixelConvTranspose(features, name=name),
    "transposed": lambda features, name: nn.ConvTranspose(features, (3, 3), strides=(2, 2),
                                                          padding="SAME", name=name),
}


class ConvDecoder(nn.Module):
  """z -> Dense -> feature map at 1/2^n resolution -> n stride-2 transposed convs -> 3x3 conv.

  `upsample` picks how the transposed convolutions are computed (`UPSAMPLERS`); either way
  they are named as `nn.ConvTranspose` names them, so the parameter tree is the same.

  `output_shape` is (H, W, C, P): P numbers per pixel channel for the likelihood.
  """
  channels: Sequence[int]
  output_shape: Sequence[int]
  activation: str = "relu"
  upsample: str = "subpixel"

  @nn.compact
  def __call__(self, z):
    act = activation_fn(self.activation)
    if self.upsample not in UPSAMPLERS:
      raise ValueError(f"unknown upsample {self.upsample!r}; choose one of {sorted(UPSAMPLERS)}")
    height, width, num_channels, num_params = self.output_shape
    factor = 2 ** len(self.channels)
    h0, w0 = -(-height // factor), -(-width // factor)
    widths = list(reversed(self.channels))
    x = act(nn.Dense(h0 * w0 * widths[0])(z)).reshape(z.shape[0], h0, w0, widths[0])
    for i, w in enumerate(widths):
      x = act(UPSAMPLERS[self.upsample](w, f"ConvTranspose_{i}")(x))
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
