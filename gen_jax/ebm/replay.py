"""A replay buffer of persistent Langevin chains (IGEBM, Du & Mordatch 2019), laid out for data
parallelism.

The buffer is (n, S, ...): S = buffer_size / n slots for each of the n rows of the global
batch, so it shards along the data axis like the batch and each device keeps its own chains.
At every step row r, with its per-example key k_r, picks slot j_r ~ U{0..S-1}, restarts it from
U[low, high]^D with probability `reinit_fraction` (IGEBM: 5 %), runs Langevin from it, trains on
the result and writes it back to the same slot. Draws depend only on k_r, which the trainer
folds from the example's global stream position, so the buffer and the losses do not depend
on how the batch is split over devices.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax import keys as keys_lib

SLOT_STREAM, RESTART_STREAM, NOISE_STREAM = 0, 1, 2


def slots_per_row(buffer_size: int, batch_size: int) -> int:
  """S = buffer_size / batch_size; raises unless the buffer holds at least one batch and a whole
  number of them."""
  if buffer_size < batch_size:
    raise ValueError(f"train.buffer_size={buffer_size} is smaller than the global batch "
                     f"({batch_size}): a replay buffer needs at least one chain per example")
  if buffer_size % batch_size:
    raise ValueError(f"train.buffer_size={buffer_size} must be a multiple of the global batch "
                     f"({batch_size}): each example owns buffer_size / batch chains")
  return buffer_size // batch_size


def init_buffer(row_keys, slots: int, event_shape, low: float, high: float, dtype=jnp.float32):
  """(n, S, ...) chains from U[low, high]^D, row r's from row_keys[r]."""
  draw = lambda k: keys_lib.uniform(k, (slots,) + tuple(event_shape), dtype, low, high)
  return jax.vmap(draw)(row_keys)


def draw_starts(buffer, row_keys, reinit_fraction: float, low: float, high: float):
  """(starts (n, ...), slots (n,)): each row's chosen chain, or fresh noise with probability
  `reinit_fraction`."""
  n, slots = buffer.shape[:2]
  event_shape = buffer.shape[2:]

  def one(row, key):
    slot = jax.random.randint(keys_lib.fold_in(key, SLOT_STREAM), (), 0, slots)
    restart = keys_lib.uniform(keys_lib.fold_in(key, RESTART_STREAM), (), buffer.dtype) < reinit_fraction
    fresh = keys_lib.uniform(keys_lib.fold_in(key, NOISE_STREAM), event_shape, buffer.dtype, low, high)
    return jnp.where(restart, fresh, row[slot]), slot

  return jax.vmap(one)(buffer, row_keys)


def write_back(buffer, slots, x):
  """The buffer with row r's slot slots[r] replaced by x[r]."""
  return buffer.at[jnp.arange(buffer.shape[0]), slots].set(x)
