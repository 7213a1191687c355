"""The device mesh and where each array of a run lives.

The mesh has two axes, ('data', 'fsdp'), over every device of every host. A batch is split
along its leading axis over all of them (data parallelism over data × fsdp). With
`config.mesh.fsdp = F > 1`, every large array of the state (parameters, optimizer moments,
EMA) is split into F slices along one dimension, chosen by `fsdp_spec`, and XLA gathers the
slices where the step needs them (ZeRO-3 / FSDP); the 'data' axis takes the remaining
devices. Small arrays and scalars are replicated.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS, FSDP_AXIS = "data", "fsdp"
BATCH_AXES = (DATA_AXIS, FSDP_AXIS)  # a batch's leading axis is split over both
# Arrays with fewer elements stay replicated under FSDP: slicing them saves less memory than
# the gathers cost.
FSDP_MIN_SIZE = 2 ** 12


def make_mesh(num_devices: int = 0, fsdp: int = 1) -> Mesh:
  """A ('data', 'fsdp') mesh over the first `num_devices` devices (0: all, on every host)."""
  devices = jax.devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"num_devices={num_devices} but only {len(devices)} devices exist")
    devices = devices[:num_devices]
  if fsdp < 1 or len(devices) % fsdp:
    raise ValueError(f"mesh.fsdp={fsdp} must be a positive divisor of the {len(devices)} devices")
  return Mesh(np.asarray(devices).reshape(len(devices) // fsdp, fsdp), BATCH_AXES)


def fsdp_spec(shape, fsdp: int) -> PartitionSpec:
  """The rule: an array of at least FSDP_MIN_SIZE elements is split along its largest
  dimension divisible by `fsdp` (the last such on ties); anything else is replicated."""
  if fsdp == 1 or math.prod(shape) < FSDP_MIN_SIZE:
    return PartitionSpec()
  candidates = [d for d, n in enumerate(shape) if n % fsdp == 0]
  if not candidates:
    return PartitionSpec()
  axis = max(candidates, key=lambda d: (shape[d], d))
  return PartitionSpec(*[FSDP_AXIS if d == axis else None for d in range(len(shape))])


def state_shardings(mesh: Mesh, abstract_state, per_example: dict | None = None):
  """Shardings of a state pytree (from jax.eval_shape): the FSDP rule for every leaf, except
  the leaves under `per_example` paths, which are split along their leading (example) axis."""
  fsdp = mesh.shape[FSDP_AXIS]
  batch = NamedSharding(mesh, PartitionSpec(BATCH_AXES))

  def leaf(path, x):
    if per_example and any(_startswith(path, p) for p in per_example):
      return batch
    return NamedSharding(mesh, fsdp_spec(x.shape, fsdp))

  return jax.tree_util.tree_map_with_path(leaf, abstract_state)


def _startswith(path, prefix) -> bool:
  keys = tuple(getattr(k, "key", getattr(k, "idx", None)) for k in path)
  return keys[:len(prefix)] == tuple(prefix)


def batch_sharding(mesh: Mesh, stacked: bool = False) -> NamedSharding:
  """A global batch split over every device; `stacked` batches carry a leading step axis."""
  return NamedSharding(mesh, PartitionSpec(None, BATCH_AXES) if stacked else PartitionSpec(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def to_global(local_batch: dict, sharding) -> dict:
  """This host's slice of a global batch -> global arrays."""
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def bytes_per_device(tree) -> dict:
  """{device: bytes} that the arrays of `tree` hold on each addressable device."""
  out = {}
  for x in jax.tree.leaves(tree):
    for shard in x.addressable_shards:
      out[shard.device] = out.get(shard.device, 0) + shard.data.nbytes
  return out
