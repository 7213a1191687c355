"""Diffusion losses with named terms (nats per example unless named *_bpd).

`output_fn(x_t, t)` is the network's prediction under `target` (eps | x0 | v | mean).
The variational bound (Ho et al. 2020, eq. 5), with index conventions of gaussian.py:
  L = KL(q(x_T | x_0) ‖ N(0, I))                                     prior_kl
    + Σ_{t=1}^{T-1} KL(q(x_{t-1} | x_t, x_0) ‖ p_θ(x_{t-1} | x_t))   diffusion_kl
    - log p_θ(x_0 | x_1)  (index 0; discretized or Gaussian decoder)    decoder_nll
For the ε target with fixed variance σ_t², each KL equals
  w(t) |ε - ε_θ|²,  w(t) = β_t² / (2 σ_t² α_t (1 - ᾱ_t));
L_simple drops w(t) and the decoder: E_t |ε - ε_θ|² (mean over dimensions here).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax import distributions
from gen_jax.diffusion import gaussian
from gen_jax.diffusion.gaussian import Schedule, at
from gen_jax.diffusion.samplers import drop_labels
from gen_jax.keys import as_typed_key, example_keys

# -log p(x_0 | x_1) per dimension, from the decoder's mean and log variance.
DECODERS: dict[str, Callable] = {
    "discretized": lambda x0, mean, log_var: -distributions.discretized_gaussian_log_likelihood(
        x0, mean, 0.5 * log_var),
    "gaussian": lambda x0, mean, log_var: -distributions.normal_log_prob(x0, mean, log_var),
}


def _mean_dims(x):
  return jnp.mean(x.reshape(x.shape[0], -1), axis=-1)


def _check(target: str, decoder: str):
  if target not in gaussian.X0_FROM_TARGET:
    raise ValueError(f"unknown diffusion target {target!r}; choose from {sorted(gaussian.X0_FROM_TARGET)}")
  if decoder not in DECODERS:
    raise ValueError(f"unknown decoder {decoder!r}; choose from {sorted(DECODERS)}")


def prior_kl(schedule: Schedule, x0):
  """KL(q(x_T | x_0) ‖ N(0, I)) per example."""
  t = jnp.full(x0.shape[:1], schedule.num_steps - 1)
  mean = at(schedule.sqrt_alphas_cumprod, t, x0) * x0
  log_var = jnp.log(at(1.0 - schedule.alphas_cumprod, t, x0))
  return distributions.sum_per_example(distributions.normal_kl(mean, jnp.broadcast_to(log_var, x0.shape), 0.0, 0.0))


def term_at(schedule: Schedule, output, x0, x_t, t, target="eps", variance="small",
            decoder="discretized"):
  """The bound's term at index t per example: KL(q(x_{t-1}|x_t,x_0) ‖ p_θ) for t > 0, the
  decoder NLL -log p_θ(x_0 | x_1) at t = 0."""
  _check(target, decoder)
  mean, log_var, _ = gaussian.p_mean_variance(schedule, target, x_t, t, output, variance)
  true_mean, _, true_log_var = gaussian.q_posterior(schedule, x0, x_t, t)
  kl = distributions.sum_per_example(distributions.normal_kl(true_mean, true_log_var, mean, log_var))
  nll = distributions.sum_per_example(DECODERS[decoder](x0, mean, log_var))
  return jnp.where(t == 0, nll, kl)


def eps_mse_weight(schedule: Schedule, t, variance="small"):
  """w(t) = β_t² / (2 σ_t² α_t (1 - ᾱ_t)) for the ε parameterization."""
  sigma2 = jnp.exp(gaussian.reverse_log_variance(schedule, t, jnp.zeros(t.shape), variance))
  return schedule.betas[t] ** 2 / (2 * sigma2 * schedule.alphas[t] * (1.0 - schedule.alphas_cumprod[t]))


LOSS_TYPES = ("simple", "weighted_mse", "vlb")


def training_losses(schedule: Schedule, output_fn, x0, key, target="eps", loss_type="simple",
                    variance="small", decoder="discretized"):
  """One t ~ U{0..T-1} and ε ~ N(0, I) per example, drawn from that example's key (`key`:
  one key, or one per example, e.g. fold_in(step key, global example index)). Returns
  (loss per example, terms), terms holding every quantity in nats per example:
    mse          |target - output|² averaged over dimensions (L_simple)
    vb_term      the bound's term at the drawn t (KL, or the decoder NLL at t = 0)
    prior_kl     KL(q(x_T | x_0) ‖ N(0, I))
    nelbo        prior_kl + T · vb_term, an unbiased estimate of the whole bound
  loss_type: "simple" = mse; "weighted_mse" = T · w(t) Σ|ε - ε_θ|² (ε target: the bound's
  t ≥ 1 terms); "vlb" = nelbo."""
  _check(target, decoder)
  if loss_type not in LOSS_TYPES:
    raise ValueError(f"unknown loss_type {loss_type!r}; choose from {LOSS_TYPES}")
  if loss_type == "weighted_mse" and target != "eps":
    raise ValueError("loss_type 'weighted_mse' is the ε parameterization's bound; use target 'eps'")
  keys = example_keys(key, x0.shape[0])
  t = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 0), (), 0, schedule.num_steps))(keys)
  noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), x0.shape[1:], x0.dtype))(keys)
  x_t = gaussian.q_sample(schedule, x0, t, noise)
  output = output_fn(x_t, t)
  wanted = gaussian.target_value(schedule, target, x0, x_t, t, noise)
  squared = jnp.square(wanted - output)
  vb = term_at(schedule, output, x0, x_t, t, target, variance, decoder)
  prior = prior_kl(schedule, x0)
  terms = {"mse": _mean_dims(squared), "vb_term": vb, "prior_kl": prior,
           "nelbo": prior + schedule.num_steps * vb}
  losses = {"simple": lambda: terms["mse"],
            "weighted_mse": lambda: schedule.num_steps * eps_mse_weight(schedule, t, variance) * distributions.sum_per_example(squared),
            "vlb": lambda: terms["nelbo"]}
  return losses[loss_type](), terms


def full_bound_terms(schedule: Schedule, output_fn, x0, key, target="eps", variance="small",
                     decoder="discretized"):
  """Every term of the bound, one x_t draw per index (T network calls per example, in a
  scan); nats per example: prior_kl, diffusion_kl (t = 1..T-1), decoder_nll, nelbo."""
  _check(target, decoder)
  key = as_typed_key(key)
  rows = jnp.arange(x0.shape[0])

  def one(carry, t_scalar):
    t = jnp.full(x0.shape[:1], t_scalar)
    noise = jax.vmap(lambda i: jax.random.normal(
        jax.random.fold_in(jax.random.fold_in(key, i), t_scalar), x0.shape[1:], x0.dtype))(rows)
    x_t = gaussian.q_sample(schedule, x0, t, noise)
    return carry, term_at(schedule, output_fn(x_t, t), x0, x_t, t, target, variance, decoder)

  _, per_t = jax.lax.scan(one, None, jnp.arange(schedule.num_steps))
  prior = prior_kl(schedule, x0)
  diffusion = jnp.sum(per_t[1:], axis=0)
  return {"prior_kl": prior, "diffusion_kl": diffusion, "decoder_nll": per_t[0],
          "nelbo": prior + diffusion + per_t[0]}


def to_bpd(nats, x0):
  """Nats per example -> bits per dimension."""
  return nats / (math.prod(x0.shape[1:]) * math.log(2.0))


def label_dropout_loss(loss_fn, labels, keys, drop_probability: float, null_label: int):
  """Classifier-free guidance training (Ho & Salimans 2022): one network learns p(x | y) and
  p(x) by replacing each example's label with ∅ (`null_label`) with probability
  `drop_probability`, drawn from fold_in(keys[i], 1); `loss_fn(labels, keys)` then gets the
  kept-or-dropped labels and the keys fold_in(keys[i], 0). Returns what loss_fn returns."""
  keys = example_keys(keys, labels.shape[0])
  drop_keys = jax.vmap(lambda k: jax.random.fold_in(k, 1))(keys)
  loss_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0))(keys)
  return loss_fn(drop_labels(labels, drop_keys, drop_probability, null_label), loss_keys)
