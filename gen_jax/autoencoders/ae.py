"""Deterministic autoencoders: reconstruction, input corruption (DAE) and KL sparsity (SAE).

AE:  L = -log p(x | g(f(x)))                (Bernoulli: cross-entropy; Gaussian: scaled MSE)
DAE: L = -log p(x | g(f(x̃))),  x̃ ~ C(x̃ | x)  (Gaussian, masking or salt-and-pepper corruption)
SAE: L = -log p(x | g(f(x))) + β Σ_j KL(Bern(ρ) || Bern(ρ̂_j)),  ρ̂_j = mean over the batch of h_j
"""

from __future__ import annotations

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from gen_jax.autoencoders.vae import sum_except_batch
from gen_jax.keys import bernoulli, example_keys

# Bounds of the data for each observation model's data range, for salt-and-pepper noise.
DATA_BOUNDS = {"binary": (0.0, 1.0), "symmetric": (-1.0, 1.0)}
# Keeps ρ̂ away from 0 and 1 in the sparsity KL.
SPARSITY_EPS = 1e-6


def gaussian_corruption(key, x, level, bounds):
  """x̃ = x + level · ε, ε ~ N(0, I)."""
  del bounds
  return x + level * jax.random.normal(key, x.shape, x.dtype)


def masking_corruption(key, x, level, bounds):
  """Each dimension set to the low bound with probability `level`."""
  drop = bernoulli(key, level, x.shape)
  return jnp.where(drop, bounds[0], x)


def salt_and_pepper_corruption(key, x, level, bounds):
  """Each dimension, with probability `level`, set to the low or high bound (fair coin)."""
  key_hit, key_salt = jax.random.split(key)
  hit = bernoulli(key_hit, level, x.shape)
  salt = bernoulli(key_salt, 0.5, x.shape)
  return jnp.where(hit, jnp.where(salt, bounds[1], bounds[0]), x)


CORRUPTIONS: Mapping[str, Callable] = {
    "gaussian": gaussian_corruption,
    "masking": masking_corruption,
    "salt_and_pepper": salt_and_pepper_corruption,
}


def corrupt(name: str, key, x, level: float, data_range: str = "binary"):
  """Corrupts a batch with per-example keys (`key`: one key or one per example)."""
  if name not in CORRUPTIONS:
    raise ValueError(f"unknown corruption {name!r}; choose one of {sorted(CORRUPTIONS)}")
  fn, bounds = CORRUPTIONS[name], DATA_BOUNDS[data_range]
  keys = example_keys(key, x.shape[0])
  return jax.vmap(lambda k, x_i: fn(k, x_i, level, bounds))(keys, x)


def bernoulli_kl(rho, rho_hat):
  """KL(Bern(ρ) || Bern(ρ̂)) = ρ log(ρ/ρ̂) + (1-ρ) log((1-ρ)/(1-ρ̂)), elementwise."""
  rho_hat = jnp.clip(rho_hat, SPARSITY_EPS, 1.0 - SPARSITY_EPS)
  return rho * jnp.log(rho / rho_hat) + (1.0 - rho) * jnp.log((1.0 - rho) / (1.0 - rho_hat))


def sparsity_penalty(code, target_rho: float):
  """Σ_j KL(Bern(ρ) || Bern(ρ̂_j)) with ρ̂_j the batch mean of code unit j (codes in (0, 1))."""
  rho_hat = code.reshape(code.shape[0], -1).mean(axis=0)
  return bernoulli_kl(target_rho, rho_hat).sum()


def reconstruction_terms(x, decoder_params, obs_model):
  """Per-example reconstruction terms: "recon_nll" = -log p(x | x̂) (nats) and "mse"."""
  nll = -sum_except_batch(obs_model.log_prob(x, decoder_params))
  mse = sum_except_batch(jnp.square(obs_model.mean(decoder_params) - x))
  return {"recon_nll": nll, "mse": mse}
