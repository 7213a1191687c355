"""PRNG key helpers: accept typed and legacy keys, and derive per-example keys.

Convention: randomness that belongs to an example is keyed by that example's
global index (`fold_in(key, index)`), so a result does not depend on the batch
size or the number of devices the batch is split over.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


# Named streams folded into the run's root key jax.random.key(config.seed).
INIT_STREAM, DATA_STREAM, LOSS_STREAM, SAMPLE_STREAM, EVAL_STREAM = range(5)
# Data splits other than train fold this offset plus their position into the data key.
SPLIT_OFFSET = 1000
SPLITS = ("train", "test", "validation")


def stream_key(seed: int, stream: int):
  """fold_in(key(seed), stream): the key of one named use of randomness in a run."""
  return jax.random.fold_in(jax.random.key(int(seed)), stream)


def split_data_key(seed: int, split: str):
  """The data-transform key of a split: the training key for "train" (so evaluation sees the
  binarization training saw), a distinct fold for every other split."""
  key = stream_key(seed, DATA_STREAM)
  return key if split == "train" else jax.random.fold_in(key, SPLIT_OFFSET + SPLITS.index(split))


def is_typed_key(key) -> bool:
  return jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)


def as_typed_key(key):
  """Returns a typed key array; legacy uint32 keys (shape (..., 2)) are wrapped."""
  key = jnp.asarray(key) if not is_typed_key(key) else key
  return key if is_typed_key(key) else jax.random.wrap_key_data(key)


def fold_in_indices(key, indices):
  """One key per index: fold_in(key, indices[i]); shape indices.shape."""
  key = as_typed_key(key)
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.asarray(indices, jnp.uint32))


def example_keys(key, batch_size: int):
  """Per-example keys for a batch.

  `key` is either one key (then example i gets fold_in(key, i)) or a batch of
  keys of shape (batch_size,) that is used as it is.
  """
  key = as_typed_key(key)
  if key.shape == ():
    return fold_in_indices(key, jnp.arange(batch_size))
  if key.shape != (batch_size,):
    raise ValueError(f"expected one key or {batch_size} per-example keys, got key shape {key.shape}")
  return key
