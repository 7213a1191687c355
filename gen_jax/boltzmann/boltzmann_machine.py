"""Fully connected Boltzmann machines over binary units s = (v, h) ∈ {0, 1}^n.

Params: {"W": (n, n) symmetric with zero diagonal, "b": (n,)}; the first `n_visible`
units are visible.  E(s) = -½ sᵀWs - bᵀs,  p_T(s) ∝ exp(-E(s) / T).
Gibbs: p(s_i = 1 | s_-i) = σ((W_i·s + b_i) / T), one unit at a time.
Learning (Ackley, Hinton & Sejnowski 1985): ∂ log p(v) / ∂W = <s sᵀ>_clamped - <s sᵀ>_free,
∂/∂b = <s>_clamped - <s>_free; here both phases use persistent chains.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.keys import as_typed_key

MAX_ENUMERATED_UNITS = 20


def init_params(key, num_units: int, scale: float = 0.01):
  w = scale * jax.random.normal(as_typed_key(key), (num_units, num_units))
  w = jnp.triu(w, 1)
  return {"W": w + w.T, "b": jnp.zeros(num_units)}


def symmetrize(w):
  """(W + Wᵀ)/2 with a zero diagonal: the projection onto valid weights."""
  w = 0.5 * (w + w.T)
  return w * (1.0 - jnp.eye(w.shape[0], dtype=w.dtype))


def energy(params, s):
  """E(s) = -½ sᵀWs - bᵀs, shape (batch,)."""
  return -0.5 * jnp.einsum("bi,ij,bj->b", s, params["W"], s) - s @ params["b"]


def gibbs_sweep(params, s, key, temperature=1.0, first_free_unit: int = 0):
  """One sequential sweep over units first_free_unit..n-1 (earlier units stay clamped)."""
  n = s.shape[-1]
  uniforms = jax.random.uniform(as_typed_key(key), s.shape[:-1] + (n,), s.dtype)

  def update(i, s):
    field = s @ params["W"][i] + params["b"][i]
    on = uniforms[..., i] < jax.nn.sigmoid(field / temperature)
    return s.at[..., i].set(on.astype(s.dtype))

  return jax.lax.fori_loop(first_free_unit, n, update, s)


def run_gibbs(params, s, key, num_sweeps: int, temperature=1.0, first_free_unit: int = 0):
  def body(k, s):
    return gibbs_sweep(params, s, jax.random.fold_in(key, k), temperature, first_free_unit)
  return jax.lax.fori_loop(0, num_sweeps, body, s)


def all_states(num_units: int, dtype=jnp.float32):
  index = jnp.arange(1 << num_units)
  return ((index[:, None] >> jnp.arange(num_units)[None, :]) & 1).astype(dtype)


def exact_distribution(params, temperature=1.0):
  """p_T(s) for all 2^n states, ordered as `all_states` (tiny models only)."""
  n = params["W"].shape[0]
  if n > MAX_ENUMERATED_UNITS:
    raise ValueError(f"enumerating 2^{n} states: at most {MAX_ENUMERATED_UNITS} units")
  return jax.nn.softmax(-energy(params, all_states(n, params["W"].dtype)) / temperature)


def state_index(s):
  """Row of `all_states` for each binary state."""
  return jnp.sum(s.astype(jnp.int32) << jnp.arange(s.shape[-1]), axis=-1)


def phase_gradients(params, v, clamped_hidden, free_chain, key, num_sweeps: int = 1):
  """Persistent positive (visible clamped to v) and negative (free) phases.

  `clamped_hidden` (batch, n_hidden) and `free_chain` (chains, n) carry over between
  calls. Returns (grads, new clamped_hidden, new free_chain).
  """
  n_visible = v.shape[-1]
  key_pos, key_neg = jax.random.split(as_typed_key(key))
  positive = run_gibbs(params, jnp.concatenate([v, clamped_hidden], -1), key_pos, num_sweeps,
                       first_free_unit=n_visible)
  negative = run_gibbs(params, free_chain, key_neg, num_sweeps)
  corr = lambda s: s.T @ s / s.shape[0]
  grads = {"W": symmetrize(corr(positive) - corr(negative)),
           "b": positive.mean(0) - negative.mean(0)}
  return grads, positive[:, n_visible:], negative
