"""Does a model copy its training images? Nearest neighbours of samples in the training set,
against those of held-out images (the thesis, section 2.4.1: a model may memorise its training
images and still look real).

For each query q the distance to the training set is d(q) = min_i ||f(q) − f(x_i)||₂ in a
space f (pixels, or features). A model that copies has samples much closer to the training set
than held-out images are: d(sample) ≪ d(held-out). `memorisation_summary` compares the two
distributions: their medians, their ratio, and the fraction of samples closer than the
`COPY_QUANTILE` quantile of the held-out distances (near-copies; about COPY_QUANTILE for a model
that does not copy, as held-out images are fresh draws from the data distribution).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.metrics import sample_metrics

CHUNK = 256
COPY_QUANTILE = 0.05


# One compiled program for every chunk (chunks are padded to CHUNK rows).
chunk_sq_distances = jax.jit(sample_metrics.pairwise_sq_distances)


def nearest_neighbours(queries, references, k: int = 1, chunk: int = CHUNK):
  """(distances (N, k), indices (N, k)) of each query's k nearest references, Euclidean, over
  flattened vectors (computed in float32 in chunks of queries)."""
  queries = np.asarray(queries, np.float32).reshape(len(queries), -1)
  references = jnp.asarray(np.asarray(references, np.float32).reshape(len(references), -1))
  if queries.shape[1] != references.shape[1]:
    raise ValueError(f"queries have {queries.shape[1]} dimensions, references {references.shape[1]}")
  k = min(k, references.shape[0])
  distances, indices = [], []
  for start in range(0, len(queries), chunk):
    block = queries[start:start + chunk]
    padded = np.concatenate([block, np.zeros((chunk - len(block), block.shape[1]), np.float32)])
    d2 = np.asarray(chunk_sq_distances(jnp.asarray(padded), references))[:len(block)]
    order = np.argsort(d2, axis=1)[:, :k]
    indices.append(order)
    distances.append(np.sqrt(np.take_along_axis(d2, order, axis=1)))
  return np.concatenate(distances), np.concatenate(indices)


def memorisation_summary(sample_distances, heldout_distances) -> dict:
  """Nearest-training-neighbour distances of samples against those of held-out images."""
  sample_distances = np.asarray(sample_distances, np.float64).reshape(-1)
  heldout_distances = np.asarray(heldout_distances, np.float64).reshape(-1)
  threshold = float(np.quantile(heldout_distances, COPY_QUANTILE))
  sample_median, heldout_median = float(np.median(sample_distances)), float(np.median(heldout_distances))
  return {"sample_nn_median": sample_median, "heldout_nn_median": heldout_median,
          "nn_median_ratio": sample_median / heldout_median if heldout_median > 0 else float("nan"),
          "near_copy_threshold": threshold,
          "near_copy_fraction": float(np.mean(sample_distances < threshold)),
          "near_copy_quantile": COPY_QUANTILE,
          "num_samples": int(sample_distances.size), "num_heldout": int(heldout_distances.size)}
