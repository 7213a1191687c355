"""Spectral normalisation (Miyato et al. 2018): W / σ(W), σ the largest singular value, estimated
by power iteration with its vector u kept between calls (so one iteration per step suffices).

For W (in, out) viewed as a matrix (a convolution kernel reshaped to (kh·kw·in, out)):
v = normalize(Wu), u = normalize(Wᵀv), σ = vᵀ W u; the gradient flows through σ with u, v
held fixed, as in the paper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NORM_EPS = 1e-12


def _normalize(v):
  return v / (jnp.linalg.norm(v) + NORM_EPS)


def power_iteration(matrix, u, num_iters: int = 1):
  """(σ estimate, new u) for `matrix` (m, n) from u (n,): num_iters rounds of v = Wu/‖Wu‖,
  u = Wᵀv/‖Wᵀv‖; σ = vᵀWu with u, v stopped from gradients."""
  def body(_, u):
    v = _normalize(matrix @ u)
    return _normalize(matrix.T @ v)

  u = jax.lax.stop_gradient(jax.lax.fori_loop(0, num_iters, body, u))
  v = jax.lax.stop_gradient(_normalize(matrix @ u))
  return v @ matrix @ u, u


def spectral_normalize(kernel, u, num_iters: int = 1):
  """(kernel / σ, new u, σ): kernel of any rank, its last axis the output features; u has the
  output size."""
  matrix = kernel.reshape(-1, kernel.shape[-1])
  sigma, u = power_iteration(matrix, u, num_iters)
  return kernel / sigma, u, sigma
