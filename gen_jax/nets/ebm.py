"""Energy networks E_θ(x) -> (batch,) (Flax linen), smooth in x for Langevin dynamics."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from gen_jax.nets.layers import activation_fn


class MLPEnergy(nn.Module):
  """E(x) = w_outᵀ act(... act(W_1 x + b_1) ...) + b_out on flattened x (swish by default: a
  smooth energy, so ∇_x E is continuous)."""
  hidden_sizes: Sequence[int]
  activation: str = "silu"

  @nn.compact
  def __call__(self, x):
    act = activation_fn(self.activation)
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden_sizes:
      h = act(nn.Dense(width)(h))
    return nn.Dense(1)(h)[:, 0]


class ConvEnergy(nn.Module):
  """A convolutional energy on (batch, H, W, C) images: per stage, a 3x3 convolution and a
  stride-2 3x3 convolution (swish), then a sum over positions and a linear read-out (IGEBM's
  shape, without spectral normalisation)."""
  channels: Sequence[int]
  activation: str = "silu"

  @nn.compact
  def __call__(self, x):
    act = activation_fn(self.activation)
    h = x
    for width in self.channels:
      h = act(nn.Conv(width, (3, 3))(h))
      h = act(nn.Conv(width, (3, 3), strides=(2, 2))(h))
    h = jnp.sum(h, axis=(1, 2))
    return nn.Dense(1)(h)[:, 0]
