"""PRNG key helpers: accept typed and legacy keys, derive per-example keys, and draw
uniforms and Bernoulli samples fast.

Convention: randomness that belongs to an example is keyed by that example's
global index (`fold_in(key, index)`), so a result does not depend on the batch
size or the number of devices the batch is split over.

`random_bits`, `uniform`, `normal`, `bernoulli` and `fold_in` return exactly what their
`jax.random` namesakes return for the same key (Threefry-2x32 keys,
`jax_threefry_partitionable` on, the default), bit for bit. They spell the 20
Threefry rounds out as array ops, which XLA fuses into one loop with its consumers; jax's
CPU lowering runs the rounds as a rolled loop, one pass over memory per block of 4 rounds,
which made Bernoulli sampling ~3.5x slower here (100x1284 draws: 0.86-1.02 ms vs 0.27 ms)
and a fifth of an RBM's PCD step. Other key implementations fall back to jax.random.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np


# Named streams folded into the run's root key jax.random.key(config.seed).
INIT_STREAM, DATA_STREAM, LOSS_STREAM, SAMPLE_STREAM, EVAL_STREAM = range(5)
# Data splits other than train fold this offset plus their position into the data key.
SPLIT_OFFSET = 1000
SPLITS = ("train", "test", "validation")


# Threefry-2x32 (Salmon et al. 2011): rotation constants of the two round groups and the
# key-schedule parity constant, as in jax's implementation.
THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
THREEFRY_PARITY = 0x1BD11BDA
THREEFRY_BLOCKS = 5  # 5 blocks of 4 rounds
MAX_COUNTER = 2**32  # draws per call on the fast path: one 32-bit counter word


def _rotate_left(x, bits: int):
  return (x << np.uint32(bits)) | (x >> np.uint32(32 - bits))


def threefry2x32(key_words, x0, x1):
  """The Threefry-2x32 block cipher of (x0, x1) under key (k0, k1), rounds unrolled."""
  k0, k1 = key_words[..., 0], key_words[..., 1]
  schedule = (k0, k1, k0 ^ k1 ^ np.uint32(THREEFRY_PARITY))
  x0, x1 = x0 + schedule[0], x1 + schedule[1]
  for block in range(THREEFRY_BLOCKS):
    for bits in THREEFRY_ROTATIONS[block % 2]:
      x0 = x0 + x1
      x1 = x0 ^ _rotate_left(x1, bits)
    x0 = x0 + schedule[(block + 1) % 3]
    x1 = x1 + schedule[(block + 2) % 3] + np.uint32(block + 1)
  return x0, x1


def _is_threefry(key) -> bool:
  return str(jax.random.key_impl(key)) == "threefry2x32"


def _fast_path(key, size: int) -> bool:
  return _is_threefry(key) and size < MAX_COUNTER and jax.config.jax_threefry_partitionable


def fold_in(key, data):
  """= jax.random.fold_in(key, data) elementwise over the broadcast of a batch of keys and
  an array of uint32 `data`: the key (Threefry(k; 0, d), both words)."""
  key = as_typed_key(key)
  data = jnp.asarray(data, jnp.uint32)
  if not _is_threefry(key):
    shape = jnp.broadcast_shapes(key.shape, data.shape)
    flat = jax.vmap(jax.random.fold_in)(jnp.broadcast_to(key, shape).ravel(),
                                        jnp.broadcast_to(data, shape).ravel())
    return flat.reshape(shape)
  return jax.random.wrap_key_data(_fold_in_words(jax.random.key_data(key), data),
                                  impl=jax.random.key_impl(key))


@jax.jit
def _fold_in_words(words, data):
  # Jitted so that eager callers run one fused computation, not ~80 separate array ops.
  return jnp.stack(threefry2x32(words, jnp.zeros_like(data), data), axis=-1)


def random_bits(key, shape, bit_width: int = 32):
  """= jax.random.bits(key, shape, uint{bit_width}) for a single key: Threefry of the
  64-bit counters 0 .. n-1 (high word 0), the two output words xored (32-bit) or
  concatenated (64-bit)."""
  key = as_typed_key(key)
  shape = tuple(int(d) for d in shape)
  dtype = {32: jnp.uint32, 64: jnp.uint64}[bit_width]
  if key.shape != ():
    raise ValueError(f"random_bits takes one key (vmap it for a batch of keys), got shape {key.shape}")
  if not _fast_path(key, math.prod(shape)):
    return jax.random.bits(key, shape, dtype)
  return _threefry_bits(jax.random.key_data(key), shape, bit_width)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _threefry_bits(words, shape, bit_width: int):
  counter = jax.lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
  hi, lo = threefry2x32(words, jnp.zeros_like(counter), counter)
  if bit_width == 32:
    return hi ^ lo
  return (hi.astype(jnp.uint64) << jnp.uint64(32)) | lo.astype(jnp.uint64)


def uniform(key, shape=(), dtype=jnp.float32, minval=0.0, maxval=1.0):
  """= jax.random.uniform(key, shape, dtype, minval, maxval): the mantissa bits of 1.x, minus
  1, scaled to [minval, maxval)."""
  dtype = jnp.dtype(dtype)
  if jnp.finfo(dtype).bits not in (32, 64):
    return jax.random.uniform(as_typed_key(key), shape, dtype, minval, maxval)
  return _uniform(as_typed_key(key), tuple(int(d) for d in shape), dtype, minval, maxval)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _uniform(key, shape, dtype, minval, maxval):
  # Compiled as one computation, as jax.random's is: scale and shift then round alike.
  info = jnp.finfo(dtype)
  bits = random_bits(key, shape, info.bits)
  uint = bits.dtype.type
  one = np.array(1.0, dtype).view(bits.dtype)
  floats = jax.lax.bitcast_convert_type((bits >> uint(info.bits - info.nmant)) | one, dtype) - 1.0
  minval, maxval = jnp.asarray(minval, dtype), jnp.asarray(maxval, dtype)
  return jnp.maximum(minval, floats * (maxval - minval) + minval)


def normal(key, shape=(), dtype=jnp.float32):
  """= jax.random.normal(key, shape, dtype) for real dtypes: √2 erf⁻¹(u), u uniform on
  (-1, 1)."""
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    return jax.random.normal(as_typed_key(key), shape, dtype)
  low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype), dtype=dtype)
  u = uniform(key, shape, dtype, low, 1.0)
  return np.array(np.sqrt(2), dtype) * jax.lax.erf_inv(u)


def bernoulli(key, p=0.5, shape=None):
  """= jax.random.bernoulli(key, p, shape): u < p for u ~ uniform(key, shape) in p's dtype
  (boolean; float p, default float for int p)."""
  p = jnp.asarray(p)
  if not jnp.issubdtype(p.dtype, jnp.floating):
    p = p.astype(jnp.result_type(float))
  shape = p.shape if shape is None else tuple(shape)
  return uniform(key, shape, p.dtype) < p


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
  if key.shape != ():
    raise ValueError(f"fold_in_indices takes one key, got shape {key.shape}")
  return fold_in(key, indices)


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
