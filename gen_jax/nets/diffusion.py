"""Denoising networks and the learned noise schedule (Flax linen modules only).

- `UNet`: the DDPM U-Net (Ho et al. 2020): sinusoidal time embedding, residual blocks with
  GroupNorm, self-attention at chosen resolutions, down/up-sampling with skip connections,
  and an optional class embedding whose last row is the null class ∅ of classifier-free
  guidance.
- `MLPDenoiser`: the same interface for flat data (2-D densities).
- `LearnedGamma`: VDM's monotone network γ_η(t) (Kingma et al. 2021, appendix), normalised to
  fixed end points γ(0) = gamma_min, γ(1) = gamma_max; SNR(t) = exp(-γ(t)).

Every denoiser is called as `net(x, time, labels=None)`: `time` is a float per example (the
caller chooses its scale: an index 0..T-1, or 1000·t), `labels` ints in [0, num_classes]
(num_classes is ∅).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nets.layers import GroupNorm, activation_fn

MAX_PERIOD = 10_000.0  # longest wavelength of the sinusoidal embedding (Vaswani et al. 2017)
GROUPS = 8  # GroupNorm groups (fewer when a width is not divisible)


def sinusoidal_embedding(time, dim: int, max_period: float = MAX_PERIOD):
  """[sin(t ω_k), cos(t ω_k)], ω_k = max_period^(-k / (dim/2)), k < dim/2; shape (batch, dim)."""
  if dim % 2:
    raise ValueError(f"sinusoidal embedding needs an even dim, got {dim}")
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = jnp.asarray(time, jnp.float32)[:, None] * freqs[None]
  return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


def _groups(channels: int) -> int:
  return math.gcd(GROUPS, channels)


class TimeLabelEmbedding(nn.Module):
  """MLP(sinusoidal(time)) plus, when num_classes > 0, Embed(labels) with row num_classes = ∅."""
  dim: int
  num_classes: int = 0

  @nn.compact
  def __call__(self, time, labels=None):
    emb = nn.Dense(self.dim)(sinusoidal_embedding(time, self.dim))
    emb = nn.Dense(self.dim)(nn.silu(emb))
    if self.num_classes:
      if labels is None:
        raise ValueError(f"this network is class-conditional ({self.num_classes} classes): pass "
                         f"labels (use {self.num_classes} for the null class)")
      emb = emb + nn.Embed(self.num_classes + 1, self.dim)(labels)
    return emb


class ResBlock(nn.Module):
  """GroupNorm → SiLU → Conv → + Dense(emb) → GroupNorm → SiLU → Conv, plus a skip (1x1 conv
  when the width changes)."""
  channels: int

  @nn.compact
  def __call__(self, x, emb):
    h = nn.Conv(self.channels, (3, 3))(nn.silu(GroupNorm(_groups(x.shape[-1]))(x)))
    h = h + nn.Dense(self.channels)(nn.silu(emb))[:, None, None, :]
    h = nn.silu(GroupNorm(_groups(self.channels))(h))
    h = nn.Conv(self.channels, (3, 3), kernel_init=nn.initializers.zeros)(h)
    if x.shape[-1] != self.channels:
      x = nn.Conv(self.channels, (1, 1))(x)
    return x + h


class AttentionBlock(nn.Module):
  """x + SelfAttention(GroupNorm(x)) over the H·W positions."""
  num_heads: int = 1

  @nn.compact
  def __call__(self, x):
    b, height, width, c = x.shape
    h = GroupNorm(_groups(c))(x).reshape(b, height * width, c)
    h = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, qkv_features=c, out_features=c,
                                        out_kernel_init=nn.initializers.zeros)(h, h)
    return x + h.reshape(b, height, width, c)


class UNet(nn.Module):
  """ε_θ(x, time, labels) for images (batch, H, W, C); output shape = input shape.

  channel_mults[i] · channels is the width at level i (resolution H / 2^i); attention runs at
  every level whose height is in `attention_resolutions`."""
  channels: int = 32
  channel_mults: Sequence[int] = (1, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: Sequence[int] = (7,)
  num_classes: int = 0
  num_heads: int = 1

  @nn.compact
  def __call__(self, x, time, labels=None):
    if x.ndim != 4:
      raise ValueError(f"UNet takes images (batch, height, width, channels); got shape {x.shape}")
    levels = len(self.channel_mults)
    if x.shape[1] % 2 ** (levels - 1) or x.shape[2] % 2 ** (levels - 1):
      raise ValueError(f"image size {x.shape[1:3]} must be divisible by 2^{levels - 1} for "
                       f"channel_mults={tuple(self.channel_mults)}: use fewer levels")
    emb = TimeLabelEmbedding(4 * self.channels, self.num_classes)(time, labels)
    h = nn.Conv(self.channels, (3, 3))(x)
    skips = [h]
    for level, mult in enumerate(self.channel_mults):
      for _ in range(self.num_res_blocks):
        h = ResBlock(mult * self.channels)(h, emb)
        if h.shape[1] in self.attention_resolutions:
          h = AttentionBlock(self.num_heads)(h)
        skips.append(h)
      if level != levels - 1:
        h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2))(h)
        skips.append(h)
    h = ResBlock(h.shape[-1])(h, emb)
    h = AttentionBlock(self.num_heads)(h)
    h = ResBlock(h.shape[-1])(h, emb)
    for level, mult in reversed(list(enumerate(self.channel_mults))):
      for _ in range(self.num_res_blocks + 1):
        h = ResBlock(mult * self.channels)(jnp.concatenate([h, skips.pop()], axis=-1), emb)
        if h.shape[1] in self.attention_resolutions:
          h = AttentionBlock(self.num_heads)(h)
      if level != 0:
        b, height, width, c = h.shape
        h = jax.image.resize(h, (b, 2 * height, 2 * width, c), "nearest")
        h = nn.Conv(c, (3, 3))(h)
    h = nn.silu(GroupNorm(_groups(h.shape[-1]))(h))
    return nn.Conv(x.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(h)


class MLPDenoiser(nn.Module):
  """ε_θ(x, time, labels) for flat data (batch, D): residual MLP on [x, embedding]."""
  hidden: int = 256
  num_layers: int = 3
  embedding_dim: int = 64
  num_classes: int = 0
  activation: str = "silu"

  @nn.compact
  def __call__(self, x, time, labels=None):
    if x.ndim != 2:
      raise ValueError(f"MLPDenoiser takes flat data (batch, dims); got shape {x.shape}")
    act = activation_fn(self.activation)
    emb = TimeLabelEmbedding(self.embedding_dim, self.num_classes)(time, labels)
    h = nn.Dense(self.hidden)(jnp.concatenate([x, emb], axis=-1))
    for _ in range(self.num_layers):
      h = h + nn.Dense(self.hidden)(act(nn.Dense(self.hidden)(act(h)) + nn.Dense(self.hidden)(emb)))
    return nn.Dense(x.shape[-1], kernel_init=nn.initializers.zeros)(act(h))


class MonotoneDense(nn.Module):
  """Dense with kernel |W| (non-negative), so the map is non-decreasing in every input."""
  features: int
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.normal()

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    y = x @ jnp.abs(kernel)
    if self.use_bias:
      y = y + self.param("bias", nn.initializers.zeros, (self.features,))
    return y


class LearnedGamma(nn.Module):
  """γ_η(t) = γ_min + (γ_max − γ_min) (γ̃(t) − γ̃(0)) / (γ̃(1) − γ̃(0)),
  γ̃(t) = l1(t) + l3(2 (σ(l2(2t − 1)) − ½)) / hidden with monotone (|W|) layers l1, l2, l3:
  non-decreasing in t with fixed end points. Call with t of any shape in [0, 1]."""
  gamma_min: float = -13.3
  gamma_max: float = 5.0
  hidden: int = 1024

  def setup(self):
    self.l1 = MonotoneDense(1, kernel_init=nn.initializers.ones)
    self.l2 = MonotoneDense(self.hidden)
    self.l3 = MonotoneDense(1, use_bias=False)

  def unnormalized(self, t):
    t = t[..., None]
    h = 2.0 * (jax.nn.sigmoid(self.l2(2.0 * (t - 0.5))) - 0.5)
    return (self.l1(t) + self.l3(h) / self.hidden)[..., 0]

  def __call__(self, t):
    t = jnp.asarray(t, jnp.float32)
    ends = self.unnormalized(jnp.array([0.0, 1.0]))
    fraction = (self.unnormalized(t) - ends[0]) / (ends[1] - ends[0])
    return self.gamma_min + (self.gamma_max - self.gamma_min) * fraction

