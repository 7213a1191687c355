"""Discrete-time samplers, each one compiled loop with per-example keys.

`eps_fn(x_t, t)` predicts ε for a batch, `t` an int array of shape (batch,). The noise for
example i at step s is drawn from fold_in(fold_in(key, i), s), so a sample does not depend
on the batch it was drawn in. Classifier-free guidance (Ho & Salimans 2022) wraps a
conditional ε network into an `eps_fn`: ε̃ = (1 + w) ε(x, c) - w ε(x, ∅).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.diffusion import gaussian
from gen_jax.diffusion.gaussian import Schedule
from gen_jax.keys import as_typed_key, bernoulli, example_keys

# fold_in index of the x_T draw: above any step index, so it never repeats a step's noise.
PRIOR_DRAW = 2**31 - 1


def step_noise(keys, step, shape, dtype=jnp.float32):
  """Per-example standard normals for loop step `step`: example i's from fold_in(keys[i], step)."""
  return jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, step), shape[1:], dtype))(keys)


def initial_noise(key, shape, dtype=jnp.float32):
  """(per-example keys, x_T): x_T of example i from fold_in(key_i, PRIOR_DRAW); `key` is one key
  or one per example."""
  keys = example_keys(as_typed_key(key), shape[0])
  x_T = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, PRIOR_DRAW), shape[1:], dtype))(keys)
  return keys, x_T


def sample_ddpm(schedule: Schedule, eps_fn, key, shape, variance="small", dtype=jnp.float32):
  """Ancestral sampling x_T ~ N(0, I), then ddpm_step from index T-1 down to 0."""
  keys, x = initial_noise(key, shape, dtype)

  def body(x, t_scalar):
    t = jnp.full(shape[:1], t_scalar)
    noise = step_noise(keys, t_scalar, shape, dtype)
    return gaussian.ddpm_step(schedule, x, t, eps_fn(x, t), noise, variance), None

  x, _ = jax.lax.scan(body, x, jnp.arange(schedule.num_steps - 1, -1, -1))
  return x


def ddim_timesteps(num_train_steps: int, num_steps: int) -> np.ndarray:
  """`num_steps` indices spread evenly over 0..T-1, always including T-1 (the first step
  starts from x_T) and 0, in decreasing order."""
  if not 1 <= num_steps <= num_train_steps:
    raise ValueError(f"DDIM needs 1 <= num_steps <= {num_train_steps}; got {num_steps}")
  return np.unique(np.round(np.linspace(0, num_train_steps - 1, num_steps)).astype(np.int32))[::-1]


def sample_ddim(schedule: Schedule, eps_fn, key, shape, num_steps: int, eta: float = 0.0,
                dtype=jnp.float32):
  """DDIM (Song, Meng & Ermon 2021) over `num_steps` indices; eta = 0 deterministic."""
  keys, x = initial_noise(key, shape, dtype)
  ts = ddim_timesteps(schedule.num_steps, num_steps)
  t_prevs = np.concatenate([ts[1:], [-1]]).astype(np.int32)

  def body(x, inputs):
    t_scalar, t_prev_scalar = inputs
    t = jnp.full(shape[:1], t_scalar)
    noise = step_noise(keys, t_scalar, shape, dtype)
    return gaussian.ddim_step(schedule, x, t, jnp.full(shape[:1], t_prev_scalar), eps_fn(x, t), eta,
                              noise), None

  x, _ = jax.lax.scan(body, x, (jnp.asarray(ts), jnp.asarray(t_prevs)))
  return x


def guided_eps_fn(conditional_eps_fn, labels, null_label: int, guidance_weight: float):
  """Classifier-free guidance: ε̃(x, t) = (1 + w) ε(x, t, c) - w ε(x, t, ∅), both in one call
  of `conditional_eps_fn(x, t, labels)` on the doubled batch."""
  def eps_fn(x, t):
    n = x.shape[0]
    both = conditional_eps_fn(jnp.concatenate([x, x]), jnp.concatenate([t, t]),
                              jnp.concatenate([labels, jnp.full_like(labels, null_label)]))
    conditional, unconditional = both[:n], both[n:]
    return (1.0 + guidance_weight) * conditional - guidance_weight * unconditional
  return eps_fn


def drop_labels(labels, keys, drop_probability: float, null_label: int):
  """Label dropout for guidance training: each label becomes ∅ with the given probability,
  drawn from that example's key."""
  drop = jax.vmap(lambda k: bernoulli(k, drop_probability))(as_typed_key(keys))
  return jnp.where(drop, null_label, labels)
