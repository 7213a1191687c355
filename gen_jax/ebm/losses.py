"""Training losses of energy-based models; each returns (loss, named per-batch terms).

Maximum likelihood (the thesis's eq. 2.25): ∇_θ (-log q_θ(x)) = ∇_θ E_θ(x) - E_{q_θ}[∇_θ E_θ],
the model expectation taken over negative samples x⁻ (Langevin chains from a replay buffer,
from noise, or from the data: CD-k, the seeds' appendix). `contrastive_divergence_loss` is
the surrogate whose gradient is that estimate, with IGEBM's energy-magnitude regulariser.

Likelihood-free alternatives, which connect this family to the diffusion family (a diffusion
model's network is a score at many noise levels; here the score is -∇_x E at one):
`denoising_score_matching_loss` (Vincent 2011) and `sliced_score_matching_loss` (Song et al.
2019).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax import keys as keys_lib
from gen_jax.distributions import sum_per_example, values_and_input_grads

EnergyApply = Callable  # (params, x) -> (n,) energies


def contrastive_divergence_loss(energy_apply: EnergyApply, params, x_data, x_model,
                                regularization: float = 0.0):
  """L = mean E(x_data) - mean E(sg(x⁻)) + α mean(E(x_data)² + E(x⁻)²).

  Its θ-gradient is the maximum-likelihood gradient of eq. 2.25 with the model expectation over
  the negatives x⁻ (held fixed: no gradient flows through the sampler), plus IGEBM's
  regulariser α (Du & Mordatch 2019), which keeps the energies near 0."""
  e_data = energy_apply(params, x_data)
  e_model = energy_apply(params, jax.lax.stop_gradient(x_model))
  gap = jnp.mean(e_data) - jnp.mean(e_model)
  magnitude = jnp.mean(e_data ** 2) + jnp.mean(e_model ** 2)
  loss = gap + regularization * magnitude
  return loss, {"energy_data": jnp.mean(e_data), "energy_model": jnp.mean(e_model),
                "energy_gap": gap, "energy_magnitude": magnitude}


def score(energy_apply: EnergyApply, params, x):
  """The model's score ∇_x log q(x) = -∇_x E(x), row by row."""
  return -values_and_input_grads(lambda x_: energy_apply(params, x_), x)[1]


def denoising_score_matching_loss(energy_apply: EnergyApply, params, x, noise, sigma: float):
  """L = mean_n ½ σ² ‖s(x̃_n) + (x̃_n - x_n) / σ²‖², x̃ = x + σ ε (`noise` = ε ~ N(0, I)).

  Its minimiser over all functions is the score of the data convolved with N(0, σ² I) (for
  Gaussian data N(μ, S): -(S + σ² I)⁻¹ (x - μ)); the σ² weighting makes the loss O(1) in σ."""
  x_noisy = x + sigma * noise
  residual = score(energy_apply, params, x_noisy) + noise / sigma
  per_example = 0.5 * sigma ** 2 * sum_per_example(residual ** 2)
  loss = jnp.mean(per_example)
  return loss, {"dsm": loss}


def sliced_score_matching_loss(energy_apply: EnergyApply, params, x, projections):
  """L = mean_{n,m} [v_mᵀ ∇_x s(x_n) v_m + ½ (v_mᵀ s(x_n))²], s = -∇_x E, `projections` v
  (M, n, ...) (Song et al. 2019). With E[v vᵀ] = I it is unbiased for Hyvärinen's
  E[tr ∇s + ½‖s‖²], whose minimiser over all scores is the data's own score; v_mᵀ ∇s v_m is one
  forward-over-reverse product per projection."""
  score_fn = lambda x_: score(energy_apply, params, x_)

  def one_projection(v):
    s, jv = jax.jvp(score_fn, (x,), (v,))
    return sum_per_example(v * jv) + 0.5 * sum_per_example(v * s) ** 2

  per_projection = jax.vmap(one_projection)(projections)
  loss = jnp.mean(per_projection)
  return loss, {"ssm": loss}


def rademacher_projections(keys, num_projections: int, event_shape, dtype=jnp.float32):
  """v ∈ {-1, 1}^D, E[v vᵀ] = I: shape (num_projections, n, ...), example n's from keys[n]."""
  def draw(key):
    bits = keys_lib.bernoulli(key, 0.5, (num_projections,) + tuple(event_shape))
    return jnp.where(bits, 1.0, -1.0).astype(dtype)

  return jnp.swapaxes(jax.vmap(draw)(keys), 0, 1)


def gaussian_noise(keys, event_shape, dtype=jnp.float32):
  """ε ~ N(0, I) per example, example n's from keys[n]."""
  return jax.vmap(lambda k: keys_lib.normal(k, tuple(event_shape), dtype))(keys)
