"""A run's working directory: its config record, checkpoints and the checks that protect them."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import tempfile
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
# Fields that may change between a run and its resumption (they do not change the model).
RESUMABLE_PREFIXES = ("train.num_steps", "train.log_every", "train.checkpoint_every",
                      "train.sample_every", "train.keep_checkpoints", "train.progress_bar",
                      "train.steps_per_call", "eval.", "num_devices", "mesh.")


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


def write_text_atomic(path: str, text: str):
  """Writes `text` to a temporary file, then renames it over `path`: a reader never sees half."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
  os.replace(tmp, path)


def write_json_atomic(path: str, record, **kwargs):
  """`record` as indented JSON, written atomically (`write_text_atomic`)."""
  write_text_atomic(path, json.dumps(record, indent=2, **kwargs))


def write_config(workdir: str, config):
  """Records the run's config (once: with its first checkpoint)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    write_json_atomic(path, config_record(config), sort_keys=True)


def check_workdir(workdir: str):
  """Raises before anything is written if `workdir` cannot hold a run."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(f"--workdir={workdir} is a file, not a directory: choose another path")
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise NotADirectoryError(f"--workdir={workdir} lies under {existing}, which is a file: choose "
                             "another path")
  try:  # an unnamed temporary file: leaves nothing behind (os.access passes anything for root)
    with tempfile.TemporaryFile(dir=existing):
      pass
  except OSError as err:
    raise PermissionError(f"--workdir={workdir} is not writable ({existing}: {err.strerror}): "
                          "choose a directory you can write to") from None


def truncate_metrics(workdir: str, step: int):
  """Drops the rows of metrics.jsonl logged after `step` (a resumed run redoes those steps),
  rewriting the file atomically so that it reads as one history."""
  from gen_jax.training.writers import METRICS_FILE
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      if json.loads(line)["step"] <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
    except (ValueError, KeyError):  # a torn last line from a killed run
      continue
  if len(kept) != len(lines):
    write_text_atomic(path, "".join(kept))


LOCK_FILE = ".lock"


class WorkdirInUseError(RuntimeError):
  """Another live run holds the workdir."""


def _pid_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


class WorkdirLock:
  """One writer per workdir: `.lock` holds the owner's pid and host for the run's lifetime. A
  lock whose pid is dead on this host is stale and taken over; one from another host is
  reported, since its liveness cannot be checked from here."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.path = os.path.join(workdir, LOCK_FILE)
    self.held = False
    if not enabled:
      return
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()})
    for _ in range(2):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        self._take_over_if_stale()
        continue
      with os.fdopen(fd, "w") as f:
        f.write(record)
      self.held = True
      return
    raise WorkdirInUseError(f"{self.path} appeared while it was being taken: another run is "
                            "starting in this workdir; use another --workdir")

  def _take_over_if_stale(self):
    try:
      with open(self.path) as f:
        owner = json.load(f)
    except (OSError, ValueError):
      owner = {}
    host, pid = owner.get("host"), owner.get("pid")
    if host == socket.gethostname() and isinstance(pid, int) and not _pid_alive(pid):
      os.remove(self.path)  # stale: its run died without releasing it
      return
    if host and host != socket.gethostname():
      raise WorkdirInUseError(
          f"workdir {os.path.dirname(self.path)!r} is locked by pid {pid} on host {host!r}: "
          f"wait for that run, or, if it is dead, delete {self.path}")
    if not owner:
      raise WorkdirInUseError(f"{self.path} is unreadable: if no run uses this workdir, delete it")
    raise WorkdirInUseError(
        f"workdir {os.path.dirname(self.path)!r} is in use by a running process (pid {pid}): "
        "wait for it to finish, stop it, or use another --workdir")

  def release(self):
    if self.held:
      self.held = False
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass


CORRUPT_DIR = "corrupt_checkpoints"
TMP_MARKER = ".orbax-checkpoint-tmp-"  # orbax's name for a checkpoint still being written


def _first_line(err: BaseException) -> str:
  """The first line of the innermost cause (orbax wraps TensorStore's error, which names the
  damaged array and file, in a message that does not)."""
  while (err.__cause__ or err.__context__) is not None:
    err = err.__cause__ or err.__context__
  text = str(err).strip()
  return (text.splitlines()[0] if text else type(err).__name__)[:400]


def _leaf_shapes(tree) -> list:
  """The sorted (shape, dtype) of every array leaf: comparable between a state and a
  checkpoint's metadata, whose containers (optax's named tuples) orbax records as dicts."""
  return sorted((tuple(x.shape), np.dtype(x.dtype).name) for x in jax.tree.leaves(tree)
                if hasattr(x, "shape"))


# Each array written whole by its first replica. (Orbax's default on CPU splits a replicated
# array's write over its replicas, which compiles one slice program per device and shape: a
# cost on every new model, for no gain on one host's disk.)
_REGISTRY = ocp.type_handlers.create_type_handler_registry(
    (jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False)),
    (np.ndarray, ocp.type_handlers.NumpyHandler()),
    *((ty, ocp.type_handlers.ScalarHandler()) for ty in (int, float, np.number)),
    (str, ocp.type_handlers.StringHandler()))


class CheckpointStore:
  """Orbax CheckpointManager: atomic saves (a temporary directory renamed when complete)
  every K steps and at the end, keeps N, restores the newest one that reads."""

  def __init__(self, workdir: str, save_every: int, keep: int, create: bool = True):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, CHECKPOINT_DIR)
    self.manager = ocp.CheckpointManager(
        self.directory, item_handlers=ocp.PyTreeCheckpointHandler(type_handler_registry=_REGISTRY),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, save_interval_steps=1,
                                             create=create, enable_async_checkpointing=False,
                                             cleanup_tmp_directories=create))
    self.save_every = save_every
    if create and jax.process_index() == 0:
      # A killed save leaves its temporary directory; it is incomplete by construction.
      for leftover in pathlib.Path(self.directory).glob(f"*{TMP_MARKER}*"):
        shutil.rmtree(leftover, ignore_errors=True)

  def latest_step(self):
    return self.manager.latest_step()

  def save(self, step: int, state, force: bool = False) -> bool:
    """Saves `state` at `step` if due (or forced); True if `step` is now on disk."""
    if not (force or step % self.save_every == 0):
      return False
    if step not in self.manager.all_steps():
      try:
        self.manager.save(step, args=ocp.args.PyTreeSave(state), force=True)
        self.manager.wait_until_finished()
      except OSError as err:
        raise OSError(f"cannot write checkpoint {step} in {self.directory} ({_first_line(err)}): "
                      "free disk space or fix the directory's permissions, then rerun; the "
                      "checkpoints already there are intact") from None
    return True

  def _matches(self, step: int, like) -> bool | None:
    """Whether checkpoint `step`'s recorded tree and shapes are those of `like` (None: its
    metadata cannot be read)."""
    try:
      meta = self.manager.item_metadata(step)
      return _leaf_shapes(getattr(meta, "tree", meta)) == _leaf_shapes(like)
    except Exception:  # noqa: BLE001 — orbax raises many types for unreadable metadata
      return None

  def restore_latest(self, like, warn=print, move_aside: bool = True):
    """(restored state, step) of the newest checkpoint that restores into `like`'s structure,
    shapes and shardings, or None when there is none. A checkpoint whose recorded shapes are
    another model's raises WorkdirMismatchError; one that cannot be read is damaged: it is
    moved to corrupt_checkpoints/ (`move_aside`) and the previous one is tried."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    for step in sorted(self.manager.all_steps(), reverse=True):
      matches = self._matches(step, like)
      if matches is False:
        raise WorkdirMismatchError(
            f"checkpoint {step} in {self.directory} holds another model's parameters (its "
            "shapes differ from this config's): use a new --workdir, or rerun with the config "
            "that made it")
      try:
        restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
        return self.manager.restore(step, args=ocp.args.PyTreeRestore(abstract, restore_args)), step
      except Exception as err:  # noqa: BLE001 — orbax raises many types for damaged files
        reason = _first_line(err)
      path = os.path.join(self.directory, str(step))
      if move_aside:
        aside = os.path.join(self.workdir, CORRUPT_DIR, f"{step}-{int(time.time())}")
        os.makedirs(os.path.dirname(aside), exist_ok=True)
        shutil.move(path, aside)
        self.manager.reload()
        warn(f"warning: checkpoint {step} is damaged ({reason}); moved it to {aside} and "
             "falling back to the previous checkpoint")
      else:
        warn(f"warning: checkpoint {step} is damaged ({reason}); using the previous checkpoint")
    return None

  def close(self):
    self.manager.close()


