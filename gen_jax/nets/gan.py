"""GAN players (Flax linen): MLPs for 2-D points, DCGAN for images, optional spectral
normalisation (its power-iteration vector in the "spectral" collection) and class conditioning
(concatenation in the generator, a projection discriminator)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.gan.spectral import spectral_normalize

SPECTRAL = "spectral"  # the variable collection of the power-iteration vectors


class SpectralDense(nn.Module):
  """Dense with W / σ(W) (one power iteration per call; u updated when the collection is
  mutable, i.e. in training)."""
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    u = self.variable(SPECTRAL, "u", lambda: jax.random.normal(self.make_rng("params"), (self.features,)))
    normalized, new_u, _ = spectral_normalize(kernel, u.value)
    if self.is_mutable_collection(SPECTRAL):
      u.value = new_u
    return x @ normalized + bias


class SpectralConv(nn.Module):
  """A 'SAME' convolution with its kernel divided by σ(kernel as a (kh·kw·in, out) matrix)."""
  features: int
  kernel_size: tuple = (4, 4)
  strides: tuple = (2, 2)

  @nn.compact
  def __call__(self, x):
    shape = (*self.kernel_size, x.shape[-1], self.features)
    kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    u = self.variable(SPECTRAL, "u", lambda: jax.random.normal(self.make_rng("params"), (self.features,)))
    normalized, new_u, _ = spectral_normalize(kernel, u.value)
    if self.is_mutable_collection(SPECTRAL):
      u.value = new_u
    y = jax.lax.conv_general_dilated(x, normalized, self.strides, "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def dense(features: int, spectral: bool):
  return SpectralDense(features) if spectral else nn.Dense(features)


class MLPGenerator(nn.Module):
  """z -> x: ReLU MLP, linear output of `out_dim`."""
  hidden_sizes: Sequence[int]
  out_dim: int

  @nn.compact
  def __call__(self, z):
    h = z
    for width in self.hidden_sizes:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.out_dim)(h)


class MLPDiscriminator(nn.Module):
  """x (n, D), or PacGAN's packs (n / m, m·D) -> logits (n,): LeakyReLU(0.2) MLP."""
  hidden_sizes: Sequence[int]
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x):
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden_sizes:
      h = nn.leaky_relu(dense(width, self.spectral_norm)(h), 0.2)
    return dense(1, self.spectral_norm)(h)[:, 0]


class DCGANGenerator(nn.Module):
  """DCGAN (Radford et al. 2016): z (⊕ a label embedding) -> Dense -> (H/4, W/4, 2c) ->
  [BatchNorm, ReLU, 4x4 transposed conv stride 2] x 2 -> sigmoid images in [0, 1]."""
  image_shape: Sequence[int]
  channels: int = 64
  num_classes: int = 0

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    h_out, w_out, c_out = self.image_shape
    if self.num_classes:
      z = jnp.concatenate([z, nn.Embed(self.num_classes, z.shape[-1])(labels)], axis=-1)
    h = nn.Dense((h_out // 4) * (w_out // 4) * 2 * self.channels)(z)
    h = h.reshape(z.shape[0], h_out // 4, w_out // 4, 2 * self.channels)
    h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
    h = nn.ConvTranspose(self.channels, (4, 4), (2, 2), padding="SAME")(h)
    h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
    h = nn.ConvTranspose(c_out, (4, 4), (2, 2), padding="SAME")(h)
    return nn.sigmoid(h)


class DCGANDiscriminator(nn.Module):
  """Images -> logits: [4x4 conv stride 2, LeakyReLU(0.2)] x 2 -> features φ; logit
  wᵀφ + b (+ ⟨embed(y), φ⟩ for a class-conditional projection discriminator, Miyato & Koyama
  2018); optional spectral normalisation of every layer."""
  channels: int = 64
  num_classes: int = 0
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, labels=None):
    conv = (lambda f: SpectralConv(f)) if self.spectral_norm else \
        (lambda f: nn.Conv(f, (4, 4), (2, 2), padding="SAME"))
    h = nn.leaky_relu(conv(self.channels)(x), 0.2)
    h = nn.leaky_relu(conv(2 * self.channels)(h), 0.2)
    features = h.reshape(h.shape[0], -1)
    logits = dense(1, self.spectral_norm)(features)[:, 0]
    if self.num_classes:
      logits = logits + jnp.sum(nn.Embed(self.num_classes, features.shape[-1])(labels) * features, axis=-1)
    return logits
