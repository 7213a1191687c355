"""Shared probability math: elementwise log-densities, KLs and observation models.

Every function is pure, elementwise (no reduction) unless its name says otherwise,
and works under `jax.jit` and `jax.vmap`. Log-densities are in nats.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

LOG_2PI = math.log(2.0 * math.pi)
# Images in [-1, 1] quantised to 256 levels: bins of width 2/255, half-width 1/255.
NUM_PIXEL_LEVELS = 256
HALF_BIN_WIDTH = 1.0 / (NUM_PIXEL_LEVELS - 1)
# Floor on a bin's probability, so log(0) never reaches the loss.
MIN_BIN_PROBABILITY = 1e-12


def values_and_input_grads(fn, x):
  """(fn(x), ∇_x Σ_n fn(x)_n) for a row-wise fn: (n, ...) -> (n,), so row n's gradient is
  ∇ fn(x_n) (energies, critics), in one backward pass."""
  values, vjp = jax.vjp(fn, x)
  return values, vjp(jnp.ones_like(values))[0]


def sum_per_example(x):
  """Σ over every axis but the first: (batch, ...) -> (batch,)."""
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


def normal_log_prob(x, mean, log_var):
  """log N(x; mean, exp(log_var)) = -1/2 [log 2π + log_var + (x - mean)² / exp(log_var)]."""
  return -0.5 * (LOG_2PI + log_var + jnp.square(x - mean) * jnp.exp(-log_var))


def standard_normal_log_prob(x):
  """log N(x; 0, 1)."""
  return -0.5 * (LOG_2PI + jnp.square(x))


def normal_kl(mean1, log_var1, mean2, log_var2):
  """KL(N(mean1, e^log_var1) || N(mean2, e^log_var2)), elementwise.

  = 1/2 [log_var2 - log_var1 + (e^log_var1 + (mean1 - mean2)²) / e^log_var2 - 1].
  """
  return 0.5 * (log_var2 - log_var1
                + (jnp.exp(log_var1) + jnp.square(mean1 - mean2)) * jnp.exp(-log_var2)
                - 1.0)


def bernoulli_log_prob(x, logits):
  """log Bern(x; sigmoid(logits)) = x·logits - softplus(logits), stable for any logits."""
  return x * logits - jax.nn.softplus(logits)


def _log_normal_cdf_difference(upper, lower):
  """log(Φ(upper) - Φ(lower)) for upper > lower, stable in both tails."""
  # Left of the origin use Φ directly; right of it use the mirror Φ(-lower) - Φ(-upper).
  use_left = (upper + lower) < 0
  hi = jnp.where(use_left, upper, -lower)
  lo = jnp.where(use_left, lower, -upper)
  log_hi, log_lo = log_ndtr(hi), log_ndtr(lo)
  return log_hi + jnp.log1p(-jnp.exp(jnp.minimum(log_lo - log_hi, -1e-7)))


def discretized_gaussian_log_likelihood(x, mean, log_scale):
  """log ∫_bin N(u; mean, e^{2 log_scale}) du for x in [-1, 1] on a 256-level grid.

  The bins at the edges extend to ±∞ (DDPM's decoder, Ho et al. 2020, eq. 13).
  """
  inv_scale = jnp.exp(-log_scale)
  upper = (x - mean + HALF_BIN_WIDTH) * inv_scale
  lower = (x - mean - HALF_BIN_WIDTH) * inv_scale
  log_cdf_upper = log_ndtr(upper)           # bin (-∞, x + h]: x == -1
  log_survival_lower = log_ndtr(-lower)     # bin [x - h, ∞): x == +1
  log_mid = _log_normal_cdf_difference(upper, lower)
  edge = 1.0 - HALF_BIN_WIDTH
  log_prob = jnp.where(x < -edge, log_cdf_upper,
                       jnp.where(x > edge, log_survival_lower, log_mid))
  return jnp.maximum(log_prob, math.log(MIN_BIN_PROBABILITY))


# ----------------------------------------------------------------------------
# Observation models p(x | decoder output): how many numbers a decoder emits per
# dimension, the log-likelihood, the mean, and the data range they accept.


@dataclasses.dataclass(frozen=True)
class ObservationModel:
  """A factorised likelihood p(x | θ) whose decoder emits `num_params` numbers per dimension."""
  name: str
  num_params: int
  log_prob: Callable[[jax.Array, jax.Array], jax.Array]  # (x, params[..., num_params]) -> elementwise
  mean: Callable[[jax.Array], jax.Array]                  # params[..., num_params] -> E[x]
  data_range: str                                         # "binary" ({0,1}) or "symmetric" ([-1,1])


def _split_scale(params):
  return params[..., 0], params[..., 1]


OBSERVATION_MODELS: Mapping[str, ObservationModel] = {
    "bernoulli": ObservationModel(
        "bernoulli", 1,
        lambda x, p: bernoulli_log_prob(x, p[..., 0]),
        lambda p: jax.nn.sigmoid(p[..., 0]),
        "binary"),
    "gaussian": ObservationModel(
        "gaussian", 2,
        lambda x, p: normal_log_prob(x, p[..., 0], 2.0 * p[..., 1]),
        lambda p: p[..., 0],
        "symmetric"),
    "discretized_gaussian": ObservationModel(
        "discretized_gaussian", 2,
        lambda x, p: discretized_gaussian_log_likelihood(x, *_split_scale(p)),
        lambda p: jnp.clip(p[..., 0], -1.0, 1.0),
        "symmetric"),
}


def observation_model(name: str) -> ObservationModel:
  """Looks up an observation model by name, with an error that lists the choices."""
  try:
    return OBSERVATION_MODELS[name]
  except KeyError:
    raise ValueError(f"unknown likelihood {name!r}; choose one of "
                     f"{sorted(OBSERVATION_MODELS)}") from None
