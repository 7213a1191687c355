"""A deterministic input pipeline.

The training stream is an endless sequence of epochs, each a permutation of the
split drawn from (seed, epoch). Global batch `step` holds stream positions
p = step·B, ..., step·B + B - 1, so the same (seed, step) gives the same global
batch whatever the number of devices or hosts; host h of H takes the h-th
contiguous slice of it. Resuming at a step needs no iterator state.

Each example carries "index" (its stream position, which keys per-visit
randomness) and "id" (its row in the split, which keys per-example randomness).
"""

from __future__ import annotations

import functools

import numpy as np

from gen_jax.data.transforms import transform_batch
from gen_jax.keys import split_data_key

EVAL_SPLIT_BATCH = 500


class BatchSampler:
  def __init__(self, num_examples: int, global_batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    if num_examples <= 0:
      raise ValueError("the training split is empty")
    if global_batch_size % process_count:
      raise ValueError(f"train.batch_size={global_batch_size} must be divisible by the number "
                       f"of hosts ({process_count})")
    self.num_examples, self.global_batch_size, self.seed = num_examples, global_batch_size, seed
    self.local_batch_size = global_batch_size // process_count
    self.process_index = process_index

  @functools.lru_cache(maxsize=4)
  def epoch_order(self, epoch: int) -> np.ndarray:
    return np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)

  def example_ids(self, positions: np.ndarray) -> np.ndarray:
    epochs, offsets = np.divmod(positions, self.num_examples)
    ids = np.empty_like(positions)
    for epoch in np.unique(epochs):
      mask = epochs == epoch
      ids[mask] = self.epoch_order(int(epoch))[offsets[mask]]
    return ids

  def local_positions(self, step: int) -> np.ndarray:
    start = step * self.global_batch_size + self.process_index * self.local_batch_size
    return np.arange(start, start + self.local_batch_size, dtype=np.int64)

  def _examples(self, source, positions: np.ndarray) -> dict:
    ids = self.example_ids(positions)
    batch = source.gather(ids)
    batch["index"] = positions.astype(np.uint32)
    batch["id"] = ids.astype(np.uint32)
    return batch

  def global_batch(self, source, step: int) -> dict:
    """The whole global batch of `step` (every host's slice), e.g. to initialise state."""
    start = step * self.global_batch_size
    return self._examples(source, np.arange(start, start + self.global_batch_size, dtype=np.int64))

  def local_batch(self, source, step: int) -> dict:
    return self._examples(source, self.local_positions(step))

  def local_batches(self, source, step: int, count: int) -> dict:
    """The local batches of steps step, ..., step + count - 1 stacked: leading axis count."""
    positions = np.concatenate([self.local_positions(i) for i in range(step, step + count)])
    return {k: v.reshape(count, self.local_batch_size, *v.shape[1:])
            for k, v in self._examples(source, positions).items()}


def eval_batches(source, batch_size: int, limit: int | None = None):
  """Fixed-size batches over a split in order; the last is padded, with a "mask" of real rows."""
  total = len(source) if limit is None else min(limit, len(source))
  for start in range(0, total, batch_size):
    ids = np.arange(start, min(start + batch_size, total))
    padded = np.concatenate([ids, np.full(batch_size - len(ids), ids[-1])])
    batch = source.gather(padded)
    batch["index"] = padded.astype(np.uint32)
    batch["id"] = padded.astype(np.uint32)
    batch["mask"] = np.arange(batch_size) < len(ids)
    yield batch


def evaluation_split(dataset, split: str, transforms, seed: int, flatten: bool = False):
  """A whole split after the evaluation transforms, keyed by split_data_key(seed, split): for
  "train" exactly the draws training saw (e.g. its static binarization)."""
  key = split_data_key(seed, split)
  transform = lambda b: transform_batch(tuple(transforms), b, key, False)
  parts = []
  for batch in eval_batches(getattr(dataset, split), EVAL_SPLIT_BATCH):
    mask = batch.pop("mask")
    x = np.asarray(transform(batch))[mask]
    parts.append(x.reshape(len(x), -1) if flatten else x)
  return np.concatenate(parts)
