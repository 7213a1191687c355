"""The two players' costs J^D and J^G (the thesis's §2.3.1) and the critic regularisers.

Logits are the discriminator's pre-sigmoid outputs (the critic's values for "wasserstein" and
"hinge"); every loss is a scalar mean over the batch. With σ the logistic function:

  kind            J^D (real r, fake f)               J^G (fake f)
  minimax         -log σ(r) - log(1 - σ(f))          log(1 - σ(f))     (Goodfellow et al. 2014)
  non_saturating  as minimax                         -log σ(f)
  wasserstein     f - r                              -f                (Arjovsky et al. 2017)
  hinge           relu(1 - r) + relu(1 + f)          -f                (Lim & Ye; SAGAN)
  least_squares   ½(r - 1)² + ½f²                    ½(f - 1)²         (Mao et al. 2017)

log σ(r) = -softplus(-r) and log(1 - σ(f)) = -softplus(f), so no loss overflows. Where D
rejects every fake (f ≪ 0) the minimax J^G's gradient ∂J^G/∂f = -σ(f) vanishes and the
non-saturating one's, -(1 - σ(f)), does not.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from gen_jax import keys as keys_lib
from gen_jax.distributions import values_and_input_grads


@dataclasses.dataclass(frozen=True)
class GanLoss:
  """Per-example costs: J^D = mean real(r) + mean fake(f) (every kind's discriminator cost
  separates), J^G = mean generator(f)."""
  real: Callable
  fake: Callable
  generator: Callable


LOSSES: Mapping[str, GanLoss] = {
    "minimax": GanLoss(lambda r: jax.nn.softplus(-r), jax.nn.softplus, lambda f: -jax.nn.softplus(f)),
    "non_saturating": GanLoss(lambda r: jax.nn.softplus(-r), jax.nn.softplus, lambda f: jax.nn.softplus(-f)),
    "wasserstein": GanLoss(lambda r: -r, lambda f: f, lambda f: -f),
    "hinge": GanLoss(lambda r: jax.nn.relu(1.0 - r), lambda f: jax.nn.relu(1.0 + f), lambda f: -f),
    "least_squares": GanLoss(lambda r: 0.5 * (r - 1.0) ** 2, lambda f: 0.5 * f ** 2,
                             lambda f: 0.5 * (f - 1.0) ** 2),
}


def gan_loss(kind: str) -> GanLoss:
  if kind not in LOSSES:
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {sorted(LOSSES)}")
  return LOSSES[kind]


def discriminator_loss(real_logits, fake_logits, kind: str):
  """J^D: mean over the real batch of its cost plus mean over the fake batch of its (table)."""
  loss = gan_loss(kind)
  return jnp.mean(loss.real(real_logits)) + jnp.mean(loss.fake(fake_logits))


def generator_loss(fake_logits, kind: str):
  """J^G: the mean over the batch of the kind's generator cost (table above)."""
  return jnp.mean(gan_loss(kind).generator(fake_logits))


def gradient_penalty(critic_fn, real, fake, key):
  """WGAN-GP (Gulrajani et al. 2017): mean_n (‖∇_x̂ critic(x̂_n)‖₂ - 1)²,
  x̂ = u·real + (1-u)·fake with u ~ U(0, 1) per example: example n's u from fold_in(key, n), or
  from key[n] when `key` holds one key per example."""
  keys = keys_lib.example_keys(key, real.shape[0])
  u = jax.vmap(lambda k: keys_lib.uniform(k, (), real.dtype))(keys)
  u = u.reshape((-1,) + (1,) * (real.ndim - 1))
  x_hat = u * real + (1.0 - u) * fake
  grads = values_and_input_grads(critic_fn, x_hat)[1]
  norms = jnp.sqrt(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))
  return jnp.mean((norms - 1.0) ** 2)


def r1_penalty(critic_fn, real):
  """R1 (Mescheder et al. 2018): mean_n ‖∇_x D(x_n)‖² on real data (weight γ/2 in the loss)."""
  grads = values_and_input_grads(critic_fn, real)[1]
  return jnp.mean(jnp.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))


def clip_weights(params, limit: float):
  """The original WGAN's weight clipping: every parameter clipped to [-limit, limit]."""
  return jax.tree.map(lambda w: jnp.clip(w, -limit, limit), params)
