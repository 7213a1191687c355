"""A run's working directory: its config record, checkpoints and the checks that protect them."""

from __future__ import annotations

import json
import os

import jax
import ml_collections
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
# Fields that may change between a run and its resumption (they do not change the model).
RESUMABLE_PREFIXES = ("train.num_steps", "train.log_every", "train.checkpoint_every",
                      "train.sample_every", "train.keep_checkpoints", "train.progress_bar",
                      "train.steps_per_call", "eval.", "num_devices")


class WorkdirMismatchError(ValueError):
  """The workdir holds a run of another config or an unreadable checkpoint."""


def _flatten(d, prefix=""):
  out = {}
  for key, value in d.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      out.update(_flatten(value, name + "."))
    else:
      out[name] = value
  return out


def config_record(config) -> dict:
  return json.loads(config.to_json_best_effort(sort_keys=True))


def check_config_matches(workdir: str, config):
  """Raises if `workdir` holds a run whose config differs in a field that shapes the model."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    if os.path.isdir(os.path.join(workdir, CHECKPOINT_DIR)) and os.listdir(
        os.path.join(workdir, CHECKPOINT_DIR)):
      raise WorkdirMismatchError(f"workdir {workdir!r} holds checkpoints but no {CONFIG_FILE}: "
                                 "use a new --workdir")
    return
  with open(path) as f:
    try:
      saved = _flatten(json.load(f))
    except json.JSONDecodeError:
      raise WorkdirMismatchError(f"{path} is not valid JSON: use a new --workdir") from None
  current = _flatten(config_record(config))
  differing = sorted(k for k in set(saved) | set(current)
                     if saved.get(k, "<absent>") != current.get(k, "<absent>")
                     and not k.startswith(RESUMABLE_PREFIXES))
  if differing:
    shown = "; ".join(f"{k}: {saved.get(k, '<absent>')!r} there, {current.get(k, '<absent>')!r} here"
                      for k in differing[:3])
    more = f" (and {len(differing) - 3} more)" if len(differing) > 3 else ""
    raise WorkdirMismatchError(
        f"workdir {workdir!r} holds a run of a different config ({shown}{more}): "
        "use a new --workdir, or rerun with the config that made it")


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a run in `workdir` was trained with."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a run's directory")
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def write_config(workdir: str, config):
  if jax.process_index() == 0:
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
      json.dump(config_record(config), f, indent=2, sort_keys=True)


class CheckpointStore:
  """Orbax CheckpointManager: atomic saves every K steps and at the end, keeps N."""

  def __init__(self, workdir: str, save_every: int, keep: int):
    self.directory = os.path.abspath(os.path.join(workdir, CHECKPOINT_DIR))
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=1,
                                             create=True, enable_async_checkpointing=False))
    self.save_every = save_every

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step: int, state, force: bool = False):
    if force or step % self.save_every == 0:
      if step not in self.manager.all_steps():
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
      self.manager.wait_until_finished()

  def restore(self, step: int, like):
    """Restores `step` into the structure, shapes and shardings of `like`."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as err:  # orbax raises many types for a mismatched or corrupt checkpoint.
      first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
      raise WorkdirMismatchError(
          f"cannot restore checkpoint {step} from {self.directory} into this config's model "
          f"({type(err).__name__}: {first_line[:300]}): use a new --workdir, or rerun with the "
          "config that made it") from None

  def close(self):
    self.manager.close()
