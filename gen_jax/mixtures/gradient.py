"""The seed's route: a Gaussian mixture fitted by gradient ascent on the log-likelihood (seed 004
learns π "as a parameter, by plain maximum likelihood").

Unconstrained parameters: logits a (π = softmax(a)), means μ (K, D) and the precision's
Cholesky factor P_k = tril(B_k) with its diagonal replaced by exp(diag(B_k)), so that
Σ_k⁻¹ = P_k P_kᵀ is positive definite for any B and
log N(x; μ_k, Σ_k) = −½ D log 2π + Σ_d log P_k,dd − ½ ‖P_kᵀ (x − μ_k)‖².
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.mixtures import gmm as gmm_lib
from gen_jax.mixtures.gmm import GaussianMixture


def precision_cholesky(raw: jax.Array) -> jax.Array:
  """P = tril(B, −1) + diag(exp(diag B)), (..., D, D)."""
  diagonal = jnp.diagonal(raw, axis1=-2, axis2=-1)
  return jnp.tril(raw, -1) + jnp.exp(diagonal)[..., None] * jnp.eye(raw.shape[-1], dtype=raw.dtype)


def to_unconstrained(gmm: GaussianMixture) -> dict:
  """The unconstrained parameters of a full-covariance mixture (the inverse of `to_mixture`)."""
  if gmm.covariance_type != "full":
    raise ValueError(f"gradient fitting parameterises full covariances; got {gmm.covariance_type!r}")
  chol = jnp.linalg.cholesky(jnp.linalg.inv(gmm.covariances))   # P with P Pᵀ = Σ⁻¹, lower
  raw = jnp.tril(chol, -1) + jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1))[..., None] * jnp.eye(
      gmm.dim, dtype=chol.dtype)
  return {"logits": jnp.log(gmm.weights), "means": gmm.means, "precision_raw": raw}


def to_mixture(params: dict) -> GaussianMixture:
  """The full-covariance mixture of unconstrained parameters: Σ_k = (P_k P_kᵀ)⁻¹."""
  p = precision_cholesky(params["precision_raw"])
  precision = p @ jnp.swapaxes(p, -1, -2)
  return GaussianMixture(jax.nn.softmax(params["logits"]), params["means"], jnp.linalg.inv(precision), "full")


def log_prob(params: dict, x: jax.Array) -> jax.Array:
  """log p(x_n) from the unconstrained parameters, (N,) (no matrix inverse)."""
  log_gauss = gmm_lib.full_log_gaussians(x, params["means"], precision_cholesky(params["precision_raw"]))
  return jax.nn.logsumexp(log_gauss + jax.nn.log_softmax(params["logits"]), axis=-1)


def nll_loss(params: dict, x: jax.Array, mask=None) -> tuple[jax.Array, dict]:
  """(−(1/N) Σ_n log p(x_n), {"nll": the same}): the loss the trainer and tests call."""
  values = log_prob(params, x)
  mask = jnp.ones_like(values) if mask is None else mask.astype(values.dtype)
  nll = -jnp.sum(values * mask) / jnp.sum(mask)
  return nll, {"nll": nll}
