"""One generic trainer for every family, in three public pieces:

    run = setup(task, config, workdir, dataset)   # validate, build the sharded state, resume
    loop(run)                                      # train until the end (or a stop / signal)
    result = finish(run)                           # final checkpoint, figures, eval.json

`train(...)` is the three in a row. A family is a `Task` (`gen_jax.training.task`): a pure
step over params, optimizer state and carried state. The trainer owns the rest: the input
pipeline and on-device transforms, the ('data', 'fsdp') mesh (jit + NamedSharding, buffers
donated, parameters and optimizer state sliced under `mesh.fsdp`), EMA, the non-finite guard,
Orbax checkpoints with automatic resume, the workdir lock, SIGINT/SIGTERM handled between
steps, metrics.jsonl / TensorBoard / console logging, the progress bar, sample PNGs and the
loss curve. Multi-host runs (after `jax.distributed.initialize`) read per-host batch slices,
save checkpoints collectively and write every file from process 0 alone.

`train.steps_per_call = K` runs up to K steps in one compiled call (a lax.scan over stacked
batches); a call never crosses a step at which the trainer logs, checkpoints, samples or
evaluates, so the results and files are those of K = 1.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from tqdm.auto import tqdm

from gen_jax.data import BatchSampler, apply_transforms, load_dataset
from gen_jax.data.transforms import check_transform_names, transform_batch
from gen_jax.keys import DATA_STREAM, EVAL_STREAM, INIT_STREAM, LOSS_STREAM, SAMPLE_STREAM
from gen_jax.training import plots, sharding as sharding_lib, workdir as workdir_lib
from gen_jax.training.optim import ema_update, make_optimizers
from gen_jax.training.task import Task, jit_init
from gen_jax.training.writers import MetricWriter, read_metrics

SAMPLES_DIR = "samples"
EVAL_FILE = "eval.json"
NO_TERM = -1
CARRY_PREFIX = "carry/"
# Exit statuses of a run stopped by a signal (128 + the signal's number, as a shell reports).
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclasses.dataclass
class TrainResult:
  state: dict
  step: int
  last_terms: dict
  eval_metrics: dict
  workdir: str


class Interrupted(Exception):
  """A run stopped by SIGINT or SIGTERM after saving its state; `exit_code` is 130 or 143."""

  def __init__(self, message: str, exit_code: int):
    super().__init__(message)
    self.exit_code = exit_code


def is_main_process() -> bool:
  return jax.process_index() == 0


# ---------------------------------------------------------------- the compiled step


def guard_names(terms: Mapping, carry) -> list[str]:
  """The names the non-finite guard checks, in its order: every metric and every carry leaf."""
  leaves = jax.tree_util.tree_flatten_with_path(carry)[0]
  return sorted(terms) + [CARRY_PREFIX + jax.tree_util.keystr(path) for path, _ in leaves]


def guarded_step_fn(task: Task, optimizers, transform_names, data_key, loss_key, ema_decay: float):
  """The pure trainer step: transforms, the family's step, EMA and the non-finite guard.
  (state, global batch) -> (state, metrics). The guard records the first step with a
  non-finite metric or carry leaf and the leaf's position in `guard_names`
  (nonfinite_step, nonfinite_term); it does not hold the state back (a select or a branch
  over the whole state costs a pass over every buffer each step). The host reads the record
  before it logs, saves, samples or evaluates (`_raise_if_nonfinite`) and stops there, so no
  state after a bad step is written: the last checkpoint is the last good one."""
  family_step = task.step_maker()(optimizers)

  def train_step(state, batch):
    batch = {**batch, "x": apply_transforms(transform_names, batch, data_key, training=True)}
    inner = {"params": state["params"], "opt_state": state["opt_state"], "carry": state["carry"]}
    inner, terms = family_step(inner, batch, loss_key)
    checked = [terms[n] for n in sorted(terms)] + jax.tree.leaves(inner["carry"])
    finite = jnp.stack([jnp.all(jnp.isfinite(v)) for v in checked])
    bad = (state["nonfinite_term"] == NO_TERM) & ~jnp.all(finite)
    new_state = {
        **inner,
        "ema_params": ema_update(state["ema_params"], task.ema_of(inner["params"]), state["step"],
                                 ema_decay),
        "step": state["step"] + 1,
        "rng": state["rng"],
        "nonfinite_term": jnp.where(bad, jnp.argmin(finite), state["nonfinite_term"]).astype(jnp.int32),
        "nonfinite_step": jnp.where(bad, state["step"], state["nonfinite_step"]).astype(jnp.int32),
    }
    return new_state, terms

  return train_step


def make_step_runner(step_fn, mesh, state_shardings, sampler: BatchSampler, source):
  """advance(state, step, length) -> (state, metrics of the last step): the training steps
  step, ..., step + length - 1 on their batches of `source` in one jitted, donated call (a
  lax.scan when length > 1; one compilation per distinct length)."""
  replicated = sharding_lib.replicated(mesh)
  single = jax.jit(step_fn, in_shardings=(state_shardings, sharding_lib.batch_sharding(mesh)),
                   out_shardings=(state_shardings, replicated), donate_argnums=0)
  multi = jax.jit(lambda state, batches: jax.lax.scan(step_fn, state, batches),
                  in_shardings=(state_shardings, sharding_lib.batch_sharding(mesh, stacked=True)),
                  out_shardings=(state_shardings, replicated), donate_argnums=0)

  def advance(state, step: int, length: int):
    if length == 1:
      batch = sharding_lib.to_global(sampler.local_batch(source, step), sharding_lib.batch_sharding(mesh))
      return single(state, batch)
    batches = sharding_lib.to_global(sampler.local_batches(source, step, length),
                                     sharding_lib.batch_sharding(mesh, stacked=True))
    state, terms = multi(state, batches)
    return state, jax.tree.map(lambda t: t[-1], terms)

  return advance


def next_call_length(step: int, end: int, steps_per_call: int, cadences) -> int:
  """Steps in the call that starts after `step` steps: at most `steps_per_call`, ending at
  `end` or at the first multiple of a (positive) cadence after `step`, whichever is first."""
  stop = min([end] + [(step // c + 1) * c for c in cadences if c > 0])
  return max(1, min(steps_per_call, stop - step))


# ---------------------------------------------------------------- state


def checkpointed(state) -> dict:
  """What a checkpoint holds; "carry" only for tasks that carry state."""
  names = ("params", "opt_state", "ema_params", "step", "rng") + (("carry",) if state["carry"] else ())
  return {k: state[k] for k in names}


def initial_state(task: Task, optimizers, first_batch, root_key):
  """Fresh state: params from the first example, the carry from the whole first global batch
  (transformed "x", "index", ...)."""
  init_key = jax.random.fold_in(root_key, INIT_STREAM)
  params = task.init(init_key, first_batch["x"][:1])
  carry = task.init_carry(init_key, first_batch, params) if task.init_carry else {}
  if task.groups:
    opt_state = {g: optimizers[g].init(params[g]) for g in task.groups}
  else:
    (tx,) = optimizers.values()
    opt_state = tx.init(params)
  return {
      "carry": carry,
      "params": params,
      "opt_state": opt_state,
      "ema_params": jax.tree.map(jnp.copy, task.ema_of(params)),
      "step": jnp.zeros((), jnp.int32),
      "rng": jax.random.key_data(root_key),
      "nonfinite_term": jnp.full((), NO_TERM, jnp.int32),
      "nonfinite_step": jnp.full((), NO_TERM, jnp.int32),
  }


def first_global_batch(config, dataset, sampler: BatchSampler, data_key) -> dict:
  """Global batch 0 after the training transforms, on the host (the same on every host)."""
  batch = sampler.global_batch(dataset.train, 0)
  x = transform_batch(tuple(config.data.transforms), batch, data_key, training=True)
  return {**batch, "x": np.asarray(x)}


def state_layout(task: Task, optimizers, first_batch, root_key, mesh, make=None):
  """The initial state's shapes, dtypes and shardings (FSDP slices, per-example carry along
  the batch axes), without computing it: (abstract state, shardings). `make` (first batch ->
  state; by default `initial_state`'s) is traced here; pass the same function object to
  `jit_init` and it is not traced again."""
  make = make or (lambda b: initial_state(task, optimizers, b, root_key))
  abstract = jax.eval_shape(make, first_batch)
  per_example = [("carry", name) for name in task.per_example_carry]
  shardings = sharding_lib.state_shardings(mesh, abstract, per_example)
  placed = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        abstract, shardings)
  return placed, shardings


def build_state(task: Task, optimizers, first_batch, root_key, mesh):
  """The initial state created directly in its shardings; returns (state, shardings)."""
  make = lambda b: initial_state(task, optimizers, b, root_key)
  batch = {k: _replicate(np.asarray(v), mesh) for k, v in first_batch.items()}
  _, shardings = state_layout(task, optimizers, batch, root_key, mesh, make)
  return jit_init(make, out_shardings=shardings)(batch), shardings


def _replicate(value: np.ndarray, mesh):
  """A host array that every process holds alike -> a replicated global array."""
  return jax.make_array_from_callback(value.shape, sharding_lib.replicated(mesh), lambda i: value[i])


def gather_to_host(tree):
  """Any (possibly sharded, multi-host) pytree -> numpy on every host."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


# ---------------------------------------------------------------- the run


@dataclasses.dataclass
class Run:
  """What `setup` prepares and `loop` / `finish` use."""
  task: Task
  config: Any
  workdir: str
  dataset: Any
  mesh: Any
  sampler: BatchSampler
  schedules: Mapping[str, Callable]
  state: dict
  shardings: Any
  store: workdir_lib.CheckpointStore
  writer: MetricWriter
  lock: workdir_lib.WorkdirLock
  advance: Callable
  keys: Mapping[str, jax.Array]
  last_saved: Optional[int] = None
  terms: dict = dataclasses.field(default_factory=dict)
  term_names: Optional[list] = None

  @property
  def step(self) -> int:
    return int(self.state["step"])


def read_int(config, path: str, default: int) -> int:
  node = config
  for part in path.split(".")[:-1]:
    node = node.get(part) if node is not None else None
  return int(node.get(path.split(".")[-1], default)) if node is not None else default


def setup(task: Task, config, workdir: str, dataset=None) -> Run:
  """Validates the config and data (nothing is written before), takes the workdir's lock,
  builds the sharded state and restores the newest complete checkpoint."""
  workdir = os.path.abspath(workdir)
  workdir_lib.check_workdir(workdir)
  workdir_lib.check_config_matches(workdir, config)
  check_transform_names(config.data.transforms)
  steps_per_call = read_int(config, "train.steps_per_call", 1)
  if steps_per_call < 1:
    raise ValueError(f"train.steps_per_call={steps_per_call} must be at least 1")
  dataset = dataset or load_dataset(config.data)
  num_steps, global_batch = int(config.train.num_steps), int(config.train.batch_size)
  mesh = sharding_lib.make_mesh(int(config.get("num_devices", 0)), read_int(config, "mesh.fsdp", 1))
  if global_batch % mesh.size:
    raise ValueError(f"train.batch_size={global_batch} (global) must be divisible by the "
                     f"{mesh.size} devices it is split over")
  sampler = BatchSampler(len(dataset.train), global_batch, int(config.seed),
                         jax.process_index(), jax.process_count())
  root_key = jax.random.key(int(config.seed))
  keys = {name: jax.random.fold_in(root_key, stream) for name, stream in
          (("data", DATA_STREAM), ("loss", LOSS_STREAM), ("sample", SAMPLE_STREAM), ("eval", EVAL_STREAM))}
  first = first_global_batch(config, dataset, sampler, keys["data"])
  task.check_data(first["x"])  # the data the model will see, before any state is written
  optimizers, schedules = make_optimizers(config.optim, task.groups, num_steps)
  state, shardings = build_state(task, optimizers, first, root_key, mesh)

  os.makedirs(workdir, exist_ok=True)
  lock = workdir_lib.WorkdirLock(workdir, enabled=is_main_process())
  try:
    store = workdir_lib.CheckpointStore(workdir, int(config.train.checkpoint_every),
                                        int(config.train.keep_checkpoints))
    found = store.restore_latest(checkpointed(state), warn=print)
    start = 0
    if found is not None:
      restored, start = found
      state = {**state, **restored}
      message = f"resuming from step {start}"
      print(message, flush=True)
      logging.info(message)
    if is_main_process():
      workdir_lib.truncate_metrics(workdir, start)  # rows past the restored step are superseded
  except BaseException:
    lock.release()
    raise
  step_fn = guarded_step_fn(task, optimizers, tuple(config.data.transforms), keys["data"],
                            keys["loss"], float(config.train.ema_decay))
  advance = make_step_runner(step_fn, mesh, shardings, sampler, dataset.train)
  writer = MetricWriter(workdir, enabled=is_main_process())
  return Run(task, config, workdir, dataset, mesh, sampler, schedules, state, shardings, store,
             writer, lock, advance, keys, last_saved=start if found else None)


class SignalFlag:
  """SIGINT and SIGTERM set a flag that the loop reads between calls (a running call is
  never interrupted, so no donated buffer is lost); a second SIGINT aborts at once. With
  `immediate` (once the state is on disk: evaluation, figures) a signal raises `Interrupted`
  at once."""

  def __init__(self, immediate: bool = False, message: str = ""):
    self.signum = None
    self.immediate, self.message = immediate, message
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for signum in SIGNAL_EXIT:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def _handle(self, signum, frame):
    if self.immediate:
      message = f"interrupted by {signal.Signals(signum).name}: {self.message}"
      print(message, flush=True)
      raise Interrupted(message, SIGNAL_EXIT[signum])
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # the second Ctrl-C: the checkpoints on disk are complete
    self.signum = signum
    print(f"\n{signal.Signals(signum).name} received: finishing the step in flight, then "
          "saving a checkpoint (Ctrl-C again aborts at once)", flush=True)

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _save(run: Run, step: int, force: bool = False):
  _raise_if_nonfinite(run)
  if run.last_saved is None and (force or step % run.store.save_every == 0) and is_main_process():
    workdir_lib.write_config(run.workdir, run.config)  # written with the first checkpoint
  if run.store.save(step, checkpointed(run.state), force=force):
    run.last_saved = step


def _raise_if_nonfinite(run: Run):
  term = int(run.state["nonfinite_term"])
  if term == NO_TERM:
    return
  step = int(run.state["nonfinite_step"])
  name = run.term_names[term] if run.term_names and term < len(run.term_names) else f"#{term}"
  optim = run.config.optim
  advice = f"lower optim.learning_rate (now {optim.learning_rate:g})"
  clip = float(optim.get("grad_clip_norm", 0.0) or 0.0)
  advice += (f" or optim.grad_clip_norm (now {clip:g})" if clip
             else " or set optim.grad_clip_norm (now off)")
  if run.last_saved is None:
    where = ("no checkpoint was saved, so nothing blocks a rerun with a changed config in the "
             "same --workdir")
  else:
    where = (f"the last good checkpoint is step {run.last_saved}; a changed config needs a new "
             "--workdir")
  # The carry as it is (its sharded leaves are not all addressable in a multi-host run); a task
  # reads the replicated leaves it needs.
  detail = run.task.describe_nonfinite(run.state["carry"]) if run.task.describe_nonfinite else ""
  if detail:
    advice = detail
  raise FloatingPointError(f"non-finite value in {name!r} at step {step}; training stopped: "
                           f"{advice}; {where}")


def loop(run: Run, stop_after_step: int | None = None) -> Run:
  """Trains from the run's step to train.num_steps (or `stop_after_step`, after a
  checkpoint, as a preempted job would stop). SIGINT/SIGTERM save the state after the step in
  flight and raise `Interrupted`."""
  config, task = run.config, run.task
  num_steps = int(config.train.num_steps)
  end = num_steps if stop_after_step is None else min(num_steps, stop_after_step)
  log_every, sample_every = int(config.train.log_every), int(config.train.sample_every)
  checkpoint_every = int(config.train.checkpoint_every)
  eval_every = int(config.eval.get("every_steps", 0) or 0)
  cadences = (log_every, checkpoint_every, sample_every, eval_every)
  steps_per_call = read_int(config, "train.steps_per_call", 1)
  step = run.step
  progress = tqdm(total=num_steps, initial=step, desc=f"train {task.name}", unit="step",
                  dynamic_ncols=True, mininterval=1.0,
                  # None: tqdm's default, a bar on a terminal only (not in logs or pipes).
                  disable=None if config.train.get("progress_bar", True) and is_main_process() else True)
  tick, tick_step = time.perf_counter(), step
  samples_dir = os.path.join(run.workdir, SAMPLES_DIR)
  try:
    with SignalFlag() as flag:
      while step < end and flag.signum is None:
        length = next_call_length(step, end, steps_per_call, cadences)
        run.state, run.terms = run.advance(run.state, step, length)
        done = step + length
        progress.update(length)
        if run.term_names is None:
          run.term_names = guard_names(run.terms, run.state["carry"])
        if done % log_every == 0 or done == end:
          _raise_if_nonfinite(run)
          now = time.perf_counter()
          scalars = {k: float(v) for k, v in jax.device_get(run.terms).items()}
          for group, schedule in run.schedules.items():
            scalars[learning_rate_name(group, task)] = float(schedule(done - 1))  # the last step's
          scalars["steps_per_sec"] = (done - tick_step) / max(now - tick, 1e-9)
          tick, tick_step = now, done
          run.writer.write(done, scalars)
          progress.set_postfix(loss=f"{scalars.get('loss', float('nan')):.4g}")
        if done % checkpoint_every == 0 or done == end:
          _save(run, done, force=done == end)
        if task.write_figures and sample_every and done % sample_every == 0 and done != num_steps:
          _raise_if_nonfinite(run)
          _on_main(run, lambda p: task.write_figures(
              p, run.dataset, os.path.join(samples_dir, f"step_{done:07d}"), run.keys["sample"], False))
        if task.evaluate and eval_every and done % eval_every == 0 and done != num_steps:
          _raise_if_nonfinite(run)
          metrics = _on_main(run, lambda p: task.evaluate(p, run.dataset, run.keys["eval"], False))
          run.writer.write(done, {f"test/{k}": v for k, v in (metrics or {}).items()})
        step = done
      if flag.signum is not None:
        _save(run, step, force=True)
        message = (f"interrupted by {signal.Signals(flag.signum).name}: saved checkpoint at step "
                   f"{step}; rerun the same command to resume")
        print(message, flush=True)
        raise Interrupted(message, SIGNAL_EXIT[flag.signum])
  except BaseException:
    run.writer.close()
    run.store.close()
    run.lock.release()
    raise
  finally:
    progress.close()
  return run


def learning_rate_name(group: str, task: Task) -> str:
  return f"learning_rate/{group}" if task.groups else "learning_rate"


def _on_main(run: Run, fn):
  """fn(EMA params) on process 0 (figures and evaluation write files). In a multi-host run the
  parameters are gathered first and placed on process 0's first device; they stay device
  arrays either way (a jitted closure over numpy arrays would embed them as constants)."""
  params = run.state["ema_params"]
  if jax.process_count() > 1:
    params = jax.device_put(gather_to_host(params), jax.local_devices()[0])
  return fn(params) if is_main_process() else None


def finish(run: Run) -> TrainResult:
  """At train.num_steps: the final checkpoint, figures, the loss curve and eval.json; then the
  writers, checkpoint manager and lock are closed."""
  config, task = run.config, run.task
  final_step, eval_metrics = run.step, {}
  after_save = SignalFlag(immediate=True, message=f"the checkpoint of step {final_step} is saved; "
                          "rerun the same command to write the figures and evaluate")
  try:
    if final_step >= int(config.train.num_steps):
      _save(run, final_step, force=True)
      after_save.__enter__()
      if task.write_figures:
        _on_main(run, lambda p: task.write_figures(p, run.dataset, os.path.join(
            run.workdir, SAMPLES_DIR, "final"), run.keys["sample"], True))
      if is_main_process() and os.path.exists(run.writer.path):
        run.writer.flush()
        plots.save_loss_curves(read_metrics(run.writer.path),
                               os.path.join(run.workdir, "loss_curves.png"),
                               title=f"{task.name} on {config.data.name}")
      if task.evaluate:
        eval_metrics = _on_main(run, lambda p: task.evaluate(p, run.dataset, run.keys["eval"], True)) or {}
      if task.report_carry:
        carry = run.state["carry"]
        carry = gather_to_host(carry) if jax.process_count() > 1 else jax.device_get(carry)
        if is_main_process():
          eval_metrics.update(task.report_carry(carry, run.dataset, os.path.join(
              run.workdir, SAMPLES_DIR, "final"), run.keys["eval"]) or {})
      if eval_metrics or task.evaluate:
        run.writer.write(final_step, {f"test/{k}": v for k, v in eval_metrics.items()})
        if is_main_process():
          workdir_lib.write_json_atomic(os.path.join(run.workdir, EVAL_FILE), {
              "step": final_step, "params": "ema_params", "dataset": config.data.name,
              "split": "test", **eval_metrics})
  finally:
    after_save.__exit__()
    run.writer.close()
    run.store.close()
    run.lock.release()
  last = {k: float(v) for k, v in jax.device_get(run.terms).items()} if run.terms else {}
  return TrainResult(run.state, final_step, last, eval_metrics, run.workdir)


def train(task: Task, config, workdir: str, dataset=None, stop_after_step: int | None = None):
  """Trains `task` with `config` in `workdir`, resuming from its newest checkpoint:
  setup, loop and finish. `stop_after_step` ends the run early at that step (after a
  checkpoint); a later call with the same workdir resumes it."""
  return finish(loop(setup(task, config, workdir, dataset), stop_after_step))


def restore_params(task: Task, config, workdir: str, dataset, which: str = "ema_params"):
  """(params, step) of the newest complete checkpoint in `workdir`; `which` is "ema_params"
  or "params"."""
  workdir = os.path.abspath(workdir)
  workdir_lib.check_config_matches(workdir, config)
  store = workdir_lib.CheckpointStore(workdir, 1, int(config.train.keep_checkpoints), create=False)
  mesh = sharding_lib.make_mesh(1)
  sampler = BatchSampler(len(dataset.train), int(config.train.batch_size), int(config.seed))
  root_key = jax.random.key(int(config.seed))
  first = first_global_batch(config, dataset, sampler, jax.random.fold_in(root_key, DATA_STREAM))
  optimizers, _ = make_optimizers(config.optim, task.groups, int(config.train.num_steps))
  like, _ = state_layout(task, optimizers, first, root_key, mesh)
  try:
    found = store.restore_latest(checkpointed(like), warn=print, move_aside=False)
  finally:
    store.close()
  if found is None:
    raise FileNotFoundError(f"no checkpoint in {store.directory}: train first, or point "
                            "--workdir at a run's directory")
  restored, step = found
  return restored[which], step
