"""Autoencoder models as Flax modules: AE/DAE/SAE, VAE and the two-level HVAE.

Each model's `__call__` returns the named terms the family math defines
(`gen_jax.autoencoders`), so `model.apply` is the `apply_fn` the bounds take.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import distributions
from gen_jax.autoencoders import hvae as hvae_math
from gen_jax.autoencoders import vae as vae_math
from gen_jax.nets.layers import MLP, make_decoder, make_encoder, split_gaussian

CODE_ACTIVATIONS = {"linear": lambda h: h, "sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh}


def check_image_batch(x, image_shape, model_name):
  """Raises a one-line error when a batch does not have the shape the model was built for."""
  if x.ndim != len(image_shape) + 1 or tuple(x.shape[1:]) != tuple(image_shape):
    raise ValueError(f"{model_name} expects images of shape {tuple(image_shape)} but got images of "
                     f"shape {tuple(x.shape[1:])}: build the model for this data "
                     f"(model.image_shape comes from the dataset) or feed images of that shape")
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"{model_name} expects floating-point images but got dtype {x.dtype}: "
                    "convert with the data transforms (uint8 pixels are scaled to [0, 1] first)")


class _ObservedModel(nn.Module):
  """Shared fields: what the data look like and how the decoder's output is read."""

  @property
  def obs_model(self):
    return distributions.observation_model(self.likelihood)

  @property
  def decoder_shape(self):
    return (*self.image_shape, self.obs_model.num_params)


class Autoencoder(_ObservedModel):
  """x -> code h = a(f(x)) -> decoder params g(h). Returns (code, decoder params)."""
  image_shape: Sequence[int]
  code_dim: int
  network: str = "mlp"
  sizes: Sequence[int] = (512, 256)
  likelihood: str = "bernoulli"
  code_activation: str = "linear"
  activation: str = "relu"

  def setup(self):
    self.encoder = make_encoder(self.network, self.sizes, self.code_dim, self.activation)
    self.decoder = make_decoder(self.network, self.sizes, self.decoder_shape, self.activation)

  def encode(self, x):
    check_image_batch(x, self.image_shape, type(self).__name__)
    return CODE_ACTIVATIONS[self.code_activation](self.encoder(x))

  def decode(self, code):
    return self.decoder(code)

  def __call__(self, x):
    code = self.encode(x)
    return code, self.decode(code)

  def reconstruct(self, x):
    return self.obs_model.mean(self.decode(self.encode(x)))


class VAE(_ObservedModel):
  """q(z|x) = N(μ(x), diag σ²(x)), p(z) = N(0, I), p(x|z) from the observation model."""
  image_shape: Sequence[int]
  latent_dim: int
  network: str = "mlp"
  sizes: Sequence[int] = (512, 256)
  likelihood: str = "bernoulli"
  activation: str = "relu"

  def setup(self):
    self.encoder = make_encoder(self.network, self.sizes, 2 * self.latent_dim, self.activation)
    self.decoder = make_decoder(self.network, self.sizes, self.decoder_shape, self.activation)

  def encode(self, x):
    check_image_batch(x, self.image_shape, type(self).__name__)
    return split_gaussian(self.encoder(x))

  def decode(self, z):
    return self.decoder(z)

  def __call__(self, x, key):
    """Single-sample terms log p(x|z), log p(z), log q(z|x) and the closed-form KL."""
    return vae_math.gaussian_vae_terms(x, key, self.encode, self.decode, self.obs_model)

  def reconstruct(self, x):
    return self.obs_model.mean(self.decode(self.encode(x)[0]))

  def generate(self, z, key=None):
    """Mean of p(x | z) (`key` unused: one signature for every latent-variable model)."""
    del key
    return self.obs_model.mean(self.decode(z))

  def latent_dims(self):
    return (self.latent_dim,)


class HierarchicalVAE(_ObservedModel):
  """Two-level Markov HVAE: p(z2) p(z1|z2) p(x|z1) with q(z1|x) q(z2|z1)."""
  image_shape: Sequence[int]
  latent_dims_: Sequence[int] = (32, 16)
  network: str = "mlp"
  sizes: Sequence[int] = (512, 256)
  latent_sizes: Sequence[int] = (128,)
  likelihood: str = "bernoulli"
  activation: str = "relu"

  def setup(self):
    dim1, dim2 = self.latent_dims_
    self.encoder1 = make_encoder(self.network, self.sizes, 2 * dim1, self.activation)
    self.encoder2 = MLP(tuple(self.latent_sizes), 2 * dim2, self.activation)
    self.decoder2 = MLP(tuple(reversed(tuple(self.latent_sizes))), 2 * dim1, self.activation)
    self.decoder1 = make_decoder(self.network, self.sizes, self.decoder_shape, self.activation)

  def encode(self, x):
    check_image_batch(x, self.image_shape, type(self).__name__)
    return split_gaussian(self.encoder1(x))

  def encode_top(self, z1):
    return split_gaussian(self.encoder2(z1))

  def prior_z1(self, z2):
    return split_gaussian(self.decoder2(z2))

  def decode(self, z1):
    return self.decoder1(z1)

  def __call__(self, x, key):
    return hvae_math.markov_hvae_terms(x, key, self.encode, self.encode_top, self.prior_z1,
                                       self.decode, self.obs_model)

  def reconstruct(self, x):
    return self.obs_model.mean(self.decode(self.encode(x)[0]))

  def generate(self, z2, key):
    """Ancestral sample: z1 ~ p(z1 | z2), then the mean of p(x | z1)."""
    mean1, log_var1 = self.prior_z1(z2)
    return self.obs_model.mean(self.decode(vae_math.reparameterize(key, mean1, log_var1)))

  def latent_dims(self):
    return (self.latent_dims_[1],)
