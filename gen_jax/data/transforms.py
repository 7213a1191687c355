"""Data transforms applied on device, keyed per example.

Images arrive as uint8 and are first scaled to [0, 1]. Random transforms draw
with fold_in(key, global stream position) during training (fresh each time an
example is seen) and with fold_in(key, example id) at evaluation (one fixed draw
per example, e.g. the static binarization of a test set).

- dynamic_binarize:   x ~ Bernoulli(x)              (training: new draw each visit)
- static_binarize:    x ~ Bernoulli(x), fixed per example id
- threshold_binarize: x = 1[x > 1/2]
- uniform_dequantize: x = (255 x + u) / 256, u ~ U[0, 1)
- scale_to_symmetric: x = 2x - 1                     ([0, 1] -> [-1, 1])
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp

from gen_jax.keys import bernoulli, fold_in_indices

PIXEL_MAX = 255.0
BINARIZE_THRESHOLD = 0.5


@dataclasses.dataclass(frozen=True)
class Transform:
  fn: Callable  # (key, x_i) -> x_i for one example
  random: bool
  per_visit: bool  # random draws change per visit in training (else fixed per example id)


TRANSFORMS: Mapping[str, Transform] = {
    "dynamic_binarize": Transform(
        lambda k, x: bernoulli(k, x).astype(x.dtype), True, True),
    "static_binarize": Transform(
        lambda k, x: bernoulli(k, x).astype(x.dtype), True, False),
    "threshold_binarize": Transform(
        lambda k, x: (x > BINARIZE_THRESHOLD).astype(x.dtype), False, False),
    "uniform_dequantize": Transform(
        lambda k, x: (PIXEL_MAX * x + jax.random.uniform(k, x.shape, x.dtype)) / (PIXEL_MAX + 1),
        True, True),
    "scale_to_symmetric": Transform(lambda k, x: 2.0 * x - 1.0, False, False),
}


def check_transform_names(names: Sequence[str]):
  unknown = [n for n in names if n not in TRANSFORMS]
  if unknown:
    raise ValueError(f"unknown data transform(s) {unknown} in data.transforms; "
                     f"choose from {sorted(TRANSFORMS)}")


def check_binary(x, model_name: str):
  """Raises a one-line error unless every value is 0 or 1."""
  import numpy as np
  x = np.asarray(x)
  if not np.all((x == 0) | (x == 1)):
    raise ValueError(f"{model_name} needs binary data but values span [{x.min():.3g}, {x.max():.3g}]: "
                     "add 'static_binarize' or 'dynamic_binarize' to data.transforms")


def check_8bit(x, fix: str):
  """Raises a one-line error (ending in `fix`) unless every value is some k/255 in [0, 1]."""
  import numpy as np
  x = np.asarray(x)
  if not np.all(np.isfinite(x)) or x.min() < 0 or x.max() > 1 or not np.allclose(
      x * PIXEL_MAX, np.round(x * PIXEL_MAX), atol=1e-3):
    raise ValueError(f"this model is over 8-bit images (values k/255 in [0, 1]): {fix}")


def check_points(x, name: str):
  """Raises a one-line error naming the first non-finite row of the points `x`."""
  import numpy as np
  x = np.asarray(x)
  bad = ~np.isfinite(x)
  if bad.any():
    rows = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
    raise ValueError(f"data {name!r} holds {len(rows)} non-finite row(s) (first: row {rows[0]}): "
                     "remove or replace them before training")


def to_unit_interval(x):
  """uint8 pixels -> float32 in [0, 1]; floating inputs are passed through."""
  if jnp.issubdtype(x.dtype, jnp.integer):
    return x.astype(jnp.float32) / PIXEL_MAX
  return x


def apply_transforms(names: Sequence[str], batch, key, training: bool):
  """Returns batch["x"] transformed; `batch` holds "x", "index" (stream position) and "id"."""
  check_transform_names(names)
  x = to_unit_interval(batch["x"])
  for position, name in enumerate(names):
    transform = TRANSFORMS[name]
    use_visit = training and transform.per_visit
    indices = batch["index"] if use_visit else batch["id"]
    keys = fold_in_indices(jax.random.fold_in(key, position), indices)
    x = jax.vmap(transform.fn)(keys, x)
  return x


# apply_transforms jitted once for the process (names and training static): every run and
# split with the same transforms and batch shape reuses one compiled program.
transform_batch = jax.jit(apply_transforms, static_argnums=(0, 3))
