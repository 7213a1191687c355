"""Hopfield networks: Hebbian storage, energy, asynchronous and synchronous recall.

States x ∈ {-1, +1}^N. W = (1/N) Σ_μ x_μ x_μᵀ with zero diagonal; E(x) = -½ xᵀWx.
An asynchronous update x_i ← sign(Σ_j W_ij x_j) never raises E; recall visits every unit
once per sweep in a random order. Capacity: about 0.138 N random patterns (Amit,
Gutfreund & Sompolinsky 1985).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.keys import example_keys


def hebbian_weights(patterns):
  """W = (1/N) Σ_μ x_μ x_μᵀ, zero diagonal; patterns (P, N) in {-1, +1}."""
  n = patterns.shape[1]
  w = patterns.T @ patterns / n
  return w * (1.0 - jnp.eye(n, dtype=w.dtype))


def energy(W, x):
  """E(x) = -½ xᵀWx, shape (batch,)."""
  return -0.5 * jnp.einsum("bi,ij,bj->b", x, W, x)


def _sign_keep_ties(field, current):
  return jnp.where(field > 0, 1.0, jnp.where(field < 0, -1.0, current)).astype(current.dtype)


def recall(W, x, key, num_sweeps: int):
  """Asynchronous recall: `num_sweeps` sweeps, each updating every unit once in a random
  order (per example, from its own key); a zero field leaves the unit as it is."""
  n = W.shape[0]
  keys = example_keys(key, x.shape[0])

  def one_example(x_i, key_i):
    def sweep(s, state):
      order = jax.random.permutation(jax.random.fold_in(key_i, s), n)
      def update(j, state):
        unit = order[j]
        return state.at[unit].set(_sign_keep_ties(W[unit] @ state, state[unit]))
      return jax.lax.fori_loop(0, n, update, state)
    return jax.lax.fori_loop(0, num_sweeps, sweep, x_i)

  return jax.vmap(one_example)(x, keys)


def recall_synchronous(W, x, num_steps: int):
  """Synchronous recall x ← sign(Wx) (may fall into 2-cycles)."""
  def step(_, state):
    return _sign_keep_ties(state @ W.T, state)
  return jax.lax.fori_loop(0, num_steps, step, x)


def overlap(x, patterns):
  """m = (1/N) xᵀξ per example and pattern, shape (batch, P)."""
  return x @ patterns.T / x.shape[-1]
