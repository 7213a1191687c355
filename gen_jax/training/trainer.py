"""One generic trainer for every family.

A family supplies a `Task`: `init(key, x) -> params` and a pure
`loss_fn(params, batch, key) -> (loss, named_terms)` (batch means, scalars), plus
host-side hooks for data checks, figures and evaluation. The trainer owns the
optimizer, EMA, data parallelism (jit + NamedSharding over a 1-D 'data' mesh,
buffers donated), Orbax checkpoints with automatic resume, metrics.jsonl /
TensorBoard / console logging, a progress bar, sample PNGs and the loss curve.

`train.steps_per_call = K` runs up to K steps in one compiled call (a lax.scan over
stacked batches), which removes the per-step dispatch of small models; a call never
crosses a step at which the trainer logs, checkpoints, samples or evaluates, so the
results and files are those of K = 1.

Randomness: the root key comes from `config.seed`; the loss gets a fixed key and
each example's randomness is folded in by its global stream position
(`batch["index"]`), so results do not depend on the device count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from gen_jax.data import BatchSampler, apply_transforms, load_dataset
from gen_jax.data.transforms import check_transform_names
from gen_jax.keys import DATA_STREAM, EVAL_STREAM, INIT_STREAM, LOSS_STREAM, SAMPLE_STREAM
from gen_jax.training import plots, workdir as workdir_lib
from gen_jax.training.optim import ema_update, make_optimizer
from gen_jax.training.writers import MetricWriter, read_metrics

SAMPLES_DIR = "samples"
EVAL_FILE = "eval.json"
NO_TERM = -1


@dataclasses.dataclass
class Task:
  """What a family gives the trainer."""
  name: str
  init: Callable[[Any, jax.Array], Any]                      # (key, x) -> params
  loss_fn: Callable[[Any, dict, Any], tuple]                  # (params, batch, key) -> (loss, terms)
  check_data: Callable[[np.ndarray], None] = lambda x: None   # raises on data the model cannot take
  write_figures: Optional[Callable] = None                    # (params, dataset, prefix, key, final) -> paths
  evaluate: Optional[Callable] = None                         # (params, dataset, key, final) -> metrics
  sample: Optional[Callable] = None                           # (params, keys (n,)) -> n images in [0, 1]
  to_display: Callable = lambda x: x                          # model-space data -> [0, 1] images
  # Optional state the loss carries between steps (e.g. PCD's persistent chains). With it,
  # loss_fn is (params, batch, key, aux) -> (loss, (terms, new_aux)); aux is checkpointed.
  init_aux: Optional[Callable] = None                         # (key, x_first_batch, params) -> aux


@dataclasses.dataclass
class TrainResult:
  state: dict
  step: int
  last_terms: dict
  eval_metrics: dict
  workdir: str


def make_mesh(num_devices: int = 0) -> Mesh:
  devices = jax.local_devices()
  if num_devices:
    if num_devices > len(devices):
      raise ValueError(f"num_devices={num_devices} but only {len(devices)} local devices exist")
    devices = devices[:num_devices]
  return Mesh(np.asarray(devices), ("data",))


def to_global(local_batch: dict, sharding) -> dict:
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local_batch.items()}


def _train_step_fn(task: Task, tx, transform_names, data_key, loss_key, ema_decay: float):
  """The pure train step: (state, global batch) -> (state, terms)."""

  def train_step(state, batch):
    x = apply_transforms(transform_names, batch, data_key, training=True)
    batch = {**batch, "x": x}
    if task.init_aux is None:
      (loss, terms), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(
          state["params"], batch, loss_key)
      aux = state["aux"]
    else:
      (loss, (terms, aux)), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(
          state["params"], batch, loss_key, state["aux"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    terms = {**terms, "loss": loss, "grad_norm": optax.global_norm(grads)}
    names = sorted(terms)
    finite = jnp.stack([jnp.all(jnp.isfinite(terms[n])) for n in names])
    healthy = state["nonfinite_term"] == NO_TERM
    ok = healthy & jnp.all(finite)
    updated = {
        "params": params,
        "opt_state": opt_state,
        "ema_params": ema_update(state["ema_params"], params, state["step"], ema_decay),
        "aux": aux,
    }
    kept = {name: state[name] for name in updated}
    # One branch, not an elementwise select over the whole state: after a non-finite step the
    # state freezes at its last good value.
    new_state = jax.lax.cond(ok, lambda: updated, lambda: kept)
    new_state.update({
        "step": state["step"] + 1,
        "rng": state["rng"],
        "nonfinite_term": jnp.where(healthy & ~jnp.all(finite), jnp.argmin(finite),
                                    state["nonfinite_term"]).astype(jnp.int32),
        "nonfinite_step": jnp.where(healthy & ~jnp.all(finite), state["step"],
                                    state["nonfinite_step"]).astype(jnp.int32),
    })
    return new_state, terms

  return train_step


def make_train_step(task: Task, tx, transform_names, data_key, loss_key, ema_decay: float,
                    mesh: Mesh):
  """The jitted, donated train step: (state, global batch) -> (state, terms)."""
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.jit(_train_step_fn(task, tx, transform_names, data_key, loss_key, ema_decay),
                 in_shardings=(replicated, NamedSharding(mesh, PartitionSpec("data"))),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def make_train_steps(task: Task, tx, transform_names, data_key, loss_key, ema_decay: float,
                     mesh: Mesh):
  """The jitted, donated multi-step: (state, n stacked global batches) -> (state, terms of
  each step, stacked); one compiled lax.scan of the train step per distinct n."""
  step = _train_step_fn(task, tx, transform_names, data_key, loss_key, ema_decay)
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.jit(lambda state, batches: jax.lax.scan(step, state, batches),
                 in_shardings=(replicated, NamedSharding(mesh, PartitionSpec(None, "data"))),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def make_step_runner(task: Task, tx, transform_names, data_key, loss_key, ema_decay: float,
                     mesh: Mesh, sampler: BatchSampler, source):
  """advance(state, step, length) -> (state, terms of the last step): runs the training steps
  step, ..., step + length - 1 on their batches of `source` in one compiled call."""
  args = (task, tx, transform_names, data_key, loss_key, ema_decay, mesh)
  single, multi = make_train_step(*args), make_train_steps(*args)  # each compiles on first use
  data_sharding = NamedSharding(mesh, PartitionSpec("data"))
  stacked_sharding = NamedSharding(mesh, PartitionSpec(None, "data"))

  def advance(state, step: int, length: int):
    if length == 1:
      return single(state, to_global(sampler.local_batch(source, step), data_sharding))
    state, terms = multi(state, to_global(sampler.local_batches(source, step, length), stacked_sharding))
    return state, jax.tree.map(lambda t: t[-1], terms)

  return advance


def next_call_length(step: int, end: int, steps_per_call: int, cadences) -> int:
  """Steps in the call that starts after `step` steps: at most `steps_per_call`, ending at
  `end` or at the first multiple of a (positive) cadence after `step`, whichever is first."""
  stop = min([end] + [(step // c + 1) * c for c in cadences if c > 0])
  return max(1, min(steps_per_call, stop - step))


def _checkpointed(state):
  """What a checkpoint holds; "aux" only for tasks that carry state (older layouts stay valid)."""
  names = ("params", "opt_state", "ema_params", "step", "rng") + (("aux",) if state["aux"] else ())
  return {k: state[k] for k in names}


def initial_state(task: Task, tx, first_x, root_key):
  """Fresh state; params are initialised from first_x[:1], task state (aux) from the whole batch."""
  params = task.init(jax.random.fold_in(root_key, INIT_STREAM), first_x[:1])
  aux = {}
  if task.init_aux is not None:
    aux = task.init_aux(jax.random.fold_in(root_key, INIT_STREAM), first_x, params)
  return {
      "aux": aux,
      "params": params,
      "opt_state": tx.init(params),
      "ema_params": jax.tree.map(jnp.copy, params),
      "step": jnp.zeros((), jnp.int32),
      "rng": jax.random.key_data(root_key),
      "nonfinite_term": jnp.full((), NO_TERM, jnp.int32),
      "nonfinite_step": jnp.full((), NO_TERM, jnp.int32),
  }


def _raise_if_nonfinite(state, term_names, ckpt_step):
  term = int(state["nonfinite_term"])
  if term != NO_TERM:
    raise FloatingPointError(
        f"non-finite value in loss term {term_names[term]!r} at step {int(state['nonfinite_step'])}; "
        f"training stopped, last good checkpoint is step {ckpt_step}: lower optim.learning_rate "
        "or set optim.grad_clip_norm")


def restore_params(task: Task, config, workdir: str, dataset, which: str = "ema_params"):
  """(params, step) of the newest checkpoint in `workdir`; `which` is "ema_params" or "params"."""
  workdir = os.path.abspath(workdir)
  workdir_lib.check_config_matches(workdir, config)
  store = workdir_lib.CheckpointStore(workdir, 1, int(config.train.keep_checkpoints))
  step = store.latest_step()
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {store.directory}: train first, or point "
                            "--workdir at a run's directory")
  tx, _ = make_optimizer(config.optim, int(config.train.num_steps))
  first_x = np.zeros((int(config.train.batch_size), *dataset.element_shape), np.float32)
  like = jax.eval_shape(lambda: _checkpointed(initial_state(task, tx, jnp.asarray(first_x),
                                                            jax.random.key(0))))
  restored = store.restore(step, like)
  store.close()
  return restored[which], step


def train(task: Task, config, workdir: str, dataset=None, stop_after_step: int | None = None):
  """Trains `task` with `config` in `workdir`, resuming from its latest checkpoint.

  `stop_after_step` ends the run early at that step (after a checkpoint), as a
  preempted job would; a later call with the same workdir resumes it.
  """
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  workdir_lib.check_config_matches(workdir, config)   # before anything in workdir is touched
  check_transform_names(config.data.transforms)
  steps_per_call = int(config.train.get("steps_per_call", 1))
  if steps_per_call < 1:
    raise ValueError(f"train.steps_per_call={steps_per_call} must be at least 1")
  dataset = dataset or load_dataset(config.data)
  num_steps, global_batch = int(config.train.num_steps), int(config.train.batch_size)
  mesh = make_mesh(int(config.get("num_devices", 0)))
  if global_batch % mesh.size:
    raise ValueError(f"train.batch_size={global_batch} (global) must be divisible by the "
                     f"{mesh.size} devices it is split over")
  replicated = NamedSharding(mesh, PartitionSpec())
  sampler = BatchSampler(len(dataset.train), global_batch, int(config.seed),
                         jax.process_index(), jax.process_count())
  root_key = jax.random.key(int(config.seed))
  data_key = jax.random.fold_in(root_key, DATA_STREAM)
  loss_key = jax.random.fold_in(root_key, LOSS_STREAM)

  # Check the data the model will see, on the host, before any state is written.
  first = sampler.local_batch(dataset.train, 0)
  first_x = np.asarray(jax.jit(lambda b: apply_transforms(config.data.transforms, b, data_key,
                                                          training=True))(first))
  task.check_data(first_x)

  tx, schedule = make_optimizer(config.optim, num_steps)
  state = jax.device_put(initial_state(task, tx, jnp.asarray(first_x), root_key), replicated)
  store = workdir_lib.CheckpointStore(workdir, int(config.train.checkpoint_every),
                                      int(config.train.keep_checkpoints))
  start = store.latest_step()
  if start is not None:
    restored = store.restore(start, _checkpointed(state))
    state = {**state, **restored}
    message = f"resuming from step {start}"
    print(message, flush=True)
    logging.info(message)
  else:
    start = 0
    workdir_lib.write_config(workdir, config)

  advance = make_step_runner(task, tx, tuple(config.data.transforms), data_key, loss_key,
                             float(config.train.ema_decay), mesh, sampler, dataset.train)
  writer = MetricWriter(workdir, enabled=jax.process_index() == 0)
  samples_dir = os.path.join(workdir, SAMPLES_DIR)
  sample_key = jax.random.fold_in(root_key, SAMPLE_STREAM)
  eval_key = jax.random.fold_in(root_key, EVAL_STREAM)
  end = num_steps if stop_after_step is None else min(num_steps, stop_after_step)
  log_every, sample_every = int(config.train.log_every), int(config.train.sample_every)
  eval_every = int(config.eval.get("every_steps", 0) or 0)
  term_names, terms, last_saved = None, {}, start
  progress = tqdm(total=num_steps, initial=start, desc=f"train {task.name}", unit="step",
                  dynamic_ncols=True, mininterval=1.0,
                  disable=not config.train.get("progress_bar", True))
  tick, tick_step = time.perf_counter(), start
  cadences = (log_every, int(config.train.checkpoint_every), sample_every, eval_every)
  step = start
  try:
    while step < end:
      length = next_call_length(step, end, steps_per_call, cadences)
      state, terms = advance(state, step, length)
      done = step + length
      progress.update(length)
      if term_names is None:
        term_names = sorted(terms)
      if done % log_every == 0 or done == end:
        _raise_if_nonfinite(state, term_names, last_saved)
        now = time.perf_counter()
        scalars = {k: float(v) for k, v in jax.device_get(terms).items()}
        scalars["learning_rate"] = float(schedule(done - 1))  # the last step's rate
        scalars["steps_per_sec"] = (done - tick_step) / max(now - tick, 1e-9)
        tick, tick_step = now, done
        writer.write(done, scalars)
        progress.set_postfix(loss=f"{scalars['loss']:.4g}")
      if (done % int(config.train.checkpoint_every) == 0) or done == end:
        _raise_if_nonfinite(state, term_names, last_saved)
        store.save(done, _checkpointed(state), force=done == end)
        last_saved = done
      if task.write_figures and sample_every and done % sample_every == 0 and done != num_steps:
        task.write_figures(state["ema_params"], dataset,
                           os.path.join(samples_dir, f"step_{done:07d}"), sample_key, False)
      if task.evaluate and eval_every and done % eval_every == 0 and done != num_steps:
        writer.write(done, {f"test/{k}": v for k, v in
                            task.evaluate(state["ema_params"], dataset, eval_key, False).items()})
      step = done
  except KeyboardInterrupt:
    step_now = int(state["step"])
    if int(state["nonfinite_term"]) == NO_TERM:
      store.save(step_now, _checkpointed(state), force=True)
      print(f"interrupted: saved checkpoint at step {step_now}", flush=True)
    raise
  finally:
    progress.close()
  final_step = int(state["step"])
  eval_metrics = {}
  if final_step >= num_steps:
    store.save(final_step, _checkpointed(state), force=True)
    if task.write_figures:
      task.write_figures(state["ema_params"], dataset, os.path.join(samples_dir, "final"),
                         sample_key, True)
    if jax.process_index() == 0 and os.path.exists(writer.path):
      writer._file.flush()
      plots.save_loss_curves(read_metrics(writer.path), os.path.join(workdir, "loss_curves.png"),
                             title=f"{task.name} on {config.data.name}")
    if task.evaluate:
      eval_metrics = task.evaluate(state["ema_params"], dataset, eval_key, True)
      writer.write(final_step, {f"test/{k}": v for k, v in eval_metrics.items()})
      if jax.process_index() == 0:
        with open(os.path.join(workdir, EVAL_FILE), "w") as f:
          json.dump({"step": final_step, "params": "ema_params", "dataset": config.data.name,
                     "split": "test", **eval_metrics}, f, indent=2)
  writer.close()
  store.close()
  last = {k: float(v) for k, v in jax.device_get(terms).items()} if terms else {}
  return TrainResult(state, final_step, last, eval_metrics, workdir)
