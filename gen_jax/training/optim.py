"""Optax optimizers from config: adam/adamw, linear warm-up then cosine decay, clipping, EMA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.training.task import SINGLE_GROUP

OPTIMIZERS = {
    "adam": lambda lr, cfg: optax.adam(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps),
    "adamw": lambda lr, cfg: optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps,
                                         weight_decay=cfg.weight_decay),
    "sgd": lambda lr, cfg: optax.sgd(lr, momentum=cfg.b1 or None),
}
# EMA warm-up: decay_t = min(decay, (1 + t) / (EMA_WARMUP_OFFSET + t)).
EMA_WARMUP_OFFSET = 10.0


def learning_rate_schedule(cfg, num_steps: int):
  """Linear warm-up from 0 to cfg.learning_rate over cfg.warmup_steps, then cosine decay
  to cfg.learning_rate · cfg.final_lr_fraction at num_steps."""
  warmup = min(int(cfg.warmup_steps), max(num_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else cfg.learning_rate, peak_value=cfg.learning_rate,
      warmup_steps=warmup, decay_steps=max(num_steps, warmup + 1),
      end_value=cfg.learning_rate * cfg.final_lr_fraction)


def make_optimizer(cfg, num_steps: int):
  """Returns (optax transformation, schedule)."""
  if cfg.name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {cfg.name!r} in optim.name; choose one of {sorted(OPTIMIZERS)}")
  schedule = learning_rate_schedule(cfg, num_steps)
  parts = []
  if cfg.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(cfg.grad_clip_norm))
  parts.append(OPTIMIZERS[cfg.name](schedule, cfg))
  return optax.chain(*parts), schedule


def group_config(cfg, group: str, groups) -> ml_collections.ConfigDict:
  """Group `group`'s optimizer settings: `cfg`'s fields, overridden by those of `cfg.<group>`."""
  merged = ml_collections.ConfigDict({k: v for k, v in cfg.items() if k not in groups})
  overrides = cfg.get(group)
  if overrides is not None:
    unknown = sorted(set(overrides) - set(merged))
    if unknown:
      raise ValueError(f"unknown field(s) {unknown} in optim.{group}; it overrides optim's own "
                       f"fields: {sorted(merged)}")
    merged.update(overrides)
  return merged


def make_optimizers(cfg, groups, num_steps: int):
  """({group: optax transformation}, {group: schedule}); one group, SINGLE_GROUP, when
  `groups` is empty, else one per named group (see `group_config`)."""
  if not groups:
    tx, schedule = make_optimizer(cfg, num_steps)
    return {SINGLE_GROUP: tx}, {SINGLE_GROUP: schedule}
  made = {g: make_optimizer(group_config(cfg, g, groups), num_steps) for g in groups}
  return {g: tx for g, (tx, _) in made.items()}, {g: s for g, (_, s) in made.items()}


def ema_update(ema_params, params, step, decay: float):
  """ema ← d_t · ema + (1 - d_t) · params with d_t = min(decay, (1 + t) / (10 + t))."""
  step = jnp.asarray(step, jnp.float32)
  d = jnp.minimum(decay, (1.0 + step) / (EMA_WARMUP_OFFSET + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema_params, params)
