"""The normaliser Z = ∫_B exp(-E(x)) dx of an energy-based model on a box B = [low, high]^D.

In 2-D, `grid_log_partition` integrates by the midpoint rule on a G x G grid of cell centres,
log Z ≈ logsumexp_g(-E(x_g)) + log ΔA; with it the test NLL, E(x) + log Z, is exact up to the
grid's error. On images, `ais_log_partition` anneals from the uniform density on B (log Z_0 =
D log(high - low)) to exp(-E) through f_β = exp(-βE) (Neal 2001), with MALA moves that leave
each f_β on B invariant; it returns log Ẑ and the standard error of Ẑ/Z
(metrics.likelihood.importance_log_mean, shared with the Boltzmann family's AIS). An AIS
estimate of log Z is low in expectation (Jensen), so an NLL from it is optimistic.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import keys as keys_lib
from gen_jax.ebm import samplers
from gen_jax.metrics.likelihood import importance_log_mean


def grid_points(low: float, high: float, num_per_side: int):
  """(axis, points): the G cell centres per side of [low, high] and the G² 2-D points (row-major,
  x₁ fastest), and the cell area."""
  width = (high - low) / num_per_side
  axis = low + width * (np.arange(num_per_side) + 0.5)
  xx, yy = np.meshgrid(axis, axis)
  return axis.astype(np.float32), np.stack([xx, yy], -1).reshape(-1, 2).astype(np.float32), width ** 2


def grid_log_partition(energy_fn, low: float, high: float, num_per_side: int, chunks: int = 1):
  """log Z ≈ logsumexp(-E(grid)) + log ΔA over the G² cell centres of [low, high]² (in `chunks`
  pieces, each one call of energy_fn)."""
  _, points, area = grid_points(low, high, num_per_side)
  parts = [jax.nn.logsumexp(-energy_fn(jnp.asarray(p))) for p in np.array_split(points, chunks)]
  return jax.nn.logsumexp(jnp.stack(parts)) + math.log(area)


def linear_betas(num_temperatures: int):
  """β from 0 to 1 in `num_temperatures` - 1 equal steps."""
  if num_temperatures < 2:
    raise ValueError(f"AIS needs at least 2 temperatures, got {num_temperatures}")
  return np.linspace(0.0, 1.0, num_temperatures, dtype=np.float32)


def ais_log_partition(energy_fn, event_shape, key, num_chains: int, betas, step_size: float,
                      low: float, high: float, mala_steps: int = 1):
  """AIS estimate of log Z on [low, high]^D: returns (log Ẑ, its standard error, mean MALA
  acceptance). Chain n starts from U(B) drawn with fold_in(key, n); at temperature k it adds
  -(β_k - β_{k-1}) E(x) to its log-weight, then makes `mala_steps` MALA moves on exp(-β_k E)."""
  key = keys_lib.as_typed_key(key)
  init_key, run_key = jax.random.split(key)
  x = samplers.uniform_init(init_key, num_chains, event_shape, low, high)
  betas = jnp.asarray(betas, x.dtype)
  num_dims = math.prod(event_shape)
  log_z_base = num_dims * math.log(high - low)

  def step(carry, inputs):
    x, log_w, accepted = carry
    k, beta_prev, beta = inputs
    log_w = log_w - (beta - beta_prev) * energy_fn(x)
    keys = keys_lib.fold_in(keys_lib.example_keys(run_key, num_chains), k)
    moved = samplers.run_mala(energy_fn, x, keys, mala_steps, step_size, bounds=(low, high),
                              inverse_temperature=beta)
    return (moved.x, log_w, accepted + moved.acceptance_rate), None

  inputs = (jnp.arange(betas.shape[0] - 1), betas[:-1], betas[1:])
  init = (x, jnp.zeros(num_chains, x.dtype), jnp.zeros(num_chains, x.dtype))
  (_, log_w, accepted), _ = jax.lax.scan(step, init, inputs)
  log_mean_w, std_err = importance_log_mean(log_w)
  return log_z_base + log_mean_w, std_err, jnp.mean(accepted) / (betas.shape[0] - 1)
