"""What a family gives the trainer: the typed step-level contract.

A family is a `Task`. Its heart is a pure step,

    train_step(state, batch, key) -> (state, metrics)

over a `StepState` (`params`, `opt_state`, `carry`), built by `Task.make_step(optimizers)`
from the optax transformations the trainer made for the family's parameter groups. A family
that only has a loss gives `loss_fn` instead and gets `loss_step(loss_fn)`: value_and_grad,
one optimizer update. Everything else (data, transforms, sharding, EMA, the non-finite guard,
checkpoints, resume, logging, progress, figures) is the trainer's.

Parameter groups: with `groups=()` params are one pytree and `config.optim` makes one
optimizer. With named groups (a GAN's `("generator", "discriminator")`) params, opt_state and
the optimizers are dicts keyed by group, and group g's optimizer is `config.optim` with the
fields of `config.optim.<g>` overriding it (its own learning rate, schedule and clipping).
`ema_groups` names the groups whose EMA the trainer keeps (default: all); evaluation, figures
and sampling see the EMA parameters.

Carried state (`carry`): whatever the step keeps between steps (persistent chains, a replay
buffer). It is checkpointed, covered by the non-finite guard, and the entries named in
`per_example_carry` (leading axis = one row per example of the global batch) are sharded along
the data axis like the batch.

Randomness: `key` is the run's fixed loss key; a step folds in `batch["index"]` (each
example's global stream position, unique per step) for per-example draws, so no result depends
on the batch size or device count.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional, Protocol

import jax
import numpy as np
import optax

Params = Any
Batch = Mapping[str, jax.Array]
Metrics = dict
StepState = dict  # {"params": Params, "opt_state": ..., "carry": dict}


class InitFn(Protocol):
  def __call__(self, key: jax.Array, x: jax.Array) -> Params:
    """Parameters from a key and a (1, ...) example batch (a dict by group when grouped)."""


class LossFn(Protocol):
  def __call__(self, params: Params, batch: Batch, key: jax.Array, *carry) -> tuple:
    """(loss, named terms), batch means; with carry: (loss, (named terms, new carry))."""


class TrainStep(Protocol):
  def __call__(self, state: StepState, batch: Batch, key: jax.Array) -> tuple[StepState, Metrics]:
    """One pure update: the new params, opt_state and carry, and scalar metrics."""


class MakeStep(Protocol):
  def __call__(self, optimizers: Mapping[str, optax.GradientTransformation]) -> TrainStep:
    """The family's step, given its optimizers by group (`SINGLE_GROUP` when ungrouped)."""


class InitCarry(Protocol):
  def __call__(self, key: jax.Array, batch: Batch, params: Params) -> dict:
    """The carried state from the first global batch (transformed "x", "index", ...)."""


class LogProbFn(Protocol):
  def __call__(self, params: Params, x: jax.Array, keys: jax.Array) -> jax.Array:
    """(batch,) log-density in nats of model-space x (exact or the family's estimate); row i
    draws any randomness from keys[i]."""


# The key of the one optimizer of a task without named groups.
SINGLE_GROUP = "params"

# Compiler options for programs that run once to make initial parameters. Their compile time
# is XLA's LLVM passes over one Threefry kernel per parameter array, which the default
# optimization level spends most on; level 1 compiles them several times faster (README,
# "Tests") and the integer hash gives the same bits.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def jit_init(fn: Callable, **jit_kwargs) -> Callable:
  """`jax.jit(fn)` compiled for one call: initial parameters (INIT_COMPILER_OPTIONS)."""
  return jax.jit(fn, compiler_options=INIT_COMPILER_OPTIONS, **jit_kwargs)


@dataclasses.dataclass(frozen=True)
class Density:
  """A model's log-density, for `experiments.log_prob`: `fn(params, x, keys)` on model-space
  x (keys: one per row); `method` names the estimate (printed on stderr); `to_model` maps rows in the data's own
  units to model space, `log_det(x)` is log|d model / d data| per row (added for continuous
  densities), and `check(x)` raises on rows outside the model's support."""
  fn: LogProbFn
  method: str
  # Once per call of the tool: params -> what `fn` takes as params (e.g. with log Ẑ by AIS).
  prepare: Callable[[Params, jax.Array], Any] = lambda params, key: params
  to_model: Callable[[np.ndarray], np.ndarray] = lambda x: x
  log_det: Callable[[np.ndarray], np.ndarray] = lambda x: np.zeros(len(x))
  check: Callable[[np.ndarray], None] = lambda x: None

  @classmethod
  def for_images(cls, fn: LogProbFn, method: str, data_range: str, continuous: bool,
                 prepare=lambda params, key: params) -> "Density":
    """Images given in [0, 1] (as experiments.sample writes them): `data_range` "binary" (the
    model's support is {0, 1}), "unit" (model space = [0, 1]) or "symmetric" (model space
    2x - 1; a continuous density gains D log 2 per image)."""
    if data_range not in ("binary", "unit", "symmetric"):
      raise ValueError(f"unknown image data_range {data_range!r}")

    def check(x):
      x = np.asarray(x)
      if data_range == "binary" and not np.all((x == 0) | (x == 1)):
        raise ValueError(f"this model's density is over binary images, but the input spans "
                         f"[{x.min():.3g}, {x.max():.3g}]: binarize it first (e.g. x > 0.5)")
      if x.min() < 0 or x.max() > 1:
        raise ValueError(f"images must be in [0, 1], but the input spans [{x.min():.3g}, {x.max():.3g}]")

    if data_range != "symmetric":
      return cls(fn, method, prepare=prepare, check=check)
    log_det = (lambda x: np.full(len(x), np.prod(np.shape(x)[1:]) * np.log(2.0))) if continuous \
        else (lambda x: np.zeros(len(x)))
    return cls(fn, method, prepare=prepare, to_model=lambda x: 2.0 * np.asarray(x) - 1.0,
               log_det=log_det, check=check)


@dataclasses.dataclass(frozen=True)
class Task:
  """A family, for the trainer.

  Give `loss_fn` (the default step: one optimizer over all params) or `make_step` (a
  step-level family: several groups, alternating updates, its own use of the carry).
  """
  name: str
  init: InitFn
  loss_fn: Optional[LossFn] = None
  make_step: Optional[MakeStep] = None
  groups: tuple[str, ...] = ()
  ema_groups: Optional[tuple[str, ...]] = None          # None: every group
  init_carry: Optional[InitCarry] = None
  per_example_carry: tuple[str, ...] = ()
  check_data: Callable[[np.ndarray], None] = lambda x: None   # raises on data the model cannot take
  write_figures: Optional[Callable] = None              # (params, dataset, prefix, key, final) -> paths
  evaluate: Optional[Callable] = None                   # (params, dataset, key, final) -> metrics
  sample: Optional[Callable] = None                     # (params, keys (n,)) -> n images in [0, 1] / points
  # (params, keys, temperature) -> samples with the base noise scaled by the temperature (flows)
  sample_at_temperature: Optional[Callable] = None
  density: Optional[Density] = None                     # for experiments.log_prob
  to_display: Callable = lambda x: x                    # model-space data -> [0, 1] images
  # (carry, as the state holds it) -> a sentence on what went non-finite ("" when it cannot tell),
  # added to the trainer's non-finite error (an EBM reads its replicated fault record to name the
  # chain and the MCMC step)
  describe_nonfinite: Optional[Callable[[dict], str]] = None
  # (carry on the host, dataset, figure prefix, key) -> final metrics (and figures) of the carried
  # state, added to eval.json (an EBM's replay buffer: its samples' FID/KID)
  report_carry: Optional[Callable] = None

  def __post_init__(self):
    if (self.loss_fn is None) == (self.make_step is None):
      raise TypeError(f"task {self.name!r}: give exactly one of loss_fn and make_step")
    unknown = set(self.ema_groups or ()) - set(self.groups)
    if unknown:
      raise TypeError(f"task {self.name!r}: ema_groups {sorted(unknown)} are not in groups")

  def step_maker(self) -> MakeStep:
    return self.make_step or loss_step(self.loss_fn, carries=self.init_carry is not None)

  def ema_of(self, params: Params) -> Params:
    """The part of params the EMA tracks."""
    if not self.groups or self.ema_groups is None:
      return params
    return {g: params[g] for g in self.ema_groups}


def loss_step(loss_fn: LossFn, carries: bool = False) -> MakeStep:
  """The default step of a loss-only family: ∇ of loss_fn, one optax update; metrics are the
  loss's named terms with `loss` and `grad_norm`."""

  def make(optimizers):
    (tx,) = optimizers.values()

    def step(state, batch, key):
      args = (state["params"], batch, key) + ((state["carry"],) if carries else ())
      (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(*args)
      terms, carry = out if carries else (out, state["carry"])
      updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
      params = optax.apply_updates(state["params"], updates)
      return ({"params": params, "opt_state": opt_state, "carry": carry},
              {**terms, "loss": loss, "grad_norm": optax.tree.norm(grads)})

    return step

  return make


def group_update(tx: optax.GradientTransformation, params, opt_state, grads):
  """One optax update of one group: (new params, new opt_state)."""
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state
