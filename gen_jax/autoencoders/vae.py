"""Variational bounds for latent-variable models: the ELBO and the IWAE-k bound.

A model enters as a pure `apply_fn(params, x, key) -> terms`, where for a batch
`x` and one draw z ~ q(z | x) made with `key`, `terms` maps
  "log_px_z" -> log p(x | z), "log_pz" -> log p(z), "log_qz_x" -> log q(z | x),
each of shape (batch,), and optionally "kl" -> KL(q(z | x) || p(z)) in closed form.

  ELBO(x)   = E_q[log p(x | z)] - KL(q(z | x) || p(z))
            = E_q[log p(x | z) + log p(z) - log q(z | x)]
  IWAE_k(x) = E[log (1/k) Σ_s p(x, z_s) / q(z_s | x)],   z_s ~ q(z | x) i.i.d.

ELBO ≤ IWAE_k ≤ IWAE_{k+1} ≤ log p(x) (Burda et al. 2016). Sample s of example i
uses the key fold_in(key_i, s), so the first k samples of IWAE_{k'} (k' > k) are
those of IWAE_k.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax import distributions
from gen_jax.keys import example_keys


def sum_except_batch(x):
  """Sums every axis but the first."""
  return x.reshape(x.shape[0], -1).sum(axis=1)


def reparameterize(key, mean, log_var):
  """z = mean + exp(log_var / 2) ⊙ ε,  ε ~ N(0, I)."""
  return mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape, mean.dtype)


def gaussian_vae_terms(x, key, encode, decode, obs_model):
  """Terms of a one-level VAE with q(z|x) = N(μ(x), diag σ²(x)) and p(z) = N(0, I).

  `encode(x) -> (mean, log_var)`, `decode(z) -> decoder params (batch, *x.shape[1:], P)`.
  The KL is the closed form Σ_j KL(N(μ_j, σ_j²) || N(0, 1)).
  """
  mean, log_var = encode(x)
  z = reparameterize(key, mean, log_var)
  log_px_z = sum_except_batch(obs_model.log_prob(x, decode(z)))
  zeros = jnp.zeros_like(mean)
  return {
      "log_px_z": log_px_z,
      "log_pz": sum_except_batch(distributions.standard_normal_log_prob(z)),
      "log_qz_x": sum_except_batch(distributions.normal_log_prob(z, mean, log_var)),
      "kl": sum_except_batch(distributions.normal_kl(mean, log_var, zeros, zeros)),
  }


def _sample_terms(apply_fn, params, x, key, sample_ids):
  """Terms for every (example, sample id) pair: a mapping of (batch, len(sample_ids)) arrays."""
  keys = example_keys(key, x.shape[0])

  def per_example(x_i, key_i):
    def per_sample(s):
      terms = apply_fn(params, x_i[None], jax.random.fold_in(key_i, s))
      return {name: value[0] for name, value in terms.items()}
    return jax.vmap(per_sample)(sample_ids)

  return jax.vmap(per_example)(x, keys)


def elbo_terms(apply_fn, params, x, key, num_samples: int = 1):
  """Named per-example ELBO terms (nats): "elbo", "log_px_z" (reconstruction) and "kl".

  The KL is the model's closed form where it gives one, else the Monte Carlo
  estimate E_q[log q(z|x) - log p(z)].
  """
  terms = _sample_terms(apply_fn, params, x, key, jnp.arange(num_samples))
  log_px_z = terms["log_px_z"].mean(axis=1)
  if "kl" in terms:
    kl = terms["kl"].mean(axis=1)
  else:
    kl = (terms["log_qz_x"] - terms["log_pz"]).mean(axis=1)
  return {"elbo": log_px_z - kl, "log_px_z": log_px_z, "kl": kl}


def elbo(apply_fn, params, x, key, num_samples: int = 1):
  """Per-example ELBO in nats, shape (batch,)."""
  return elbo_terms(apply_fn, params, x, key, num_samples)["elbo"]


def log_importance_weights(apply_fn, params, x, key, num_samples: int, first_sample: int = 0):
  """log w_s = log p(x | z_s) + log p(z_s) - log q(z_s | x), shape (batch, num_samples)."""
  terms = _sample_terms(apply_fn, params, x, key, first_sample + jnp.arange(num_samples))
  return terms["log_px_z"] + terms["log_pz"] - terms["log_qz_x"]


def iwae_bound(apply_fn, params, x, key, num_samples: int, chunk_size: int | None = None):
  """Per-example IWAE_k bound log (1/k) Σ_s w_s in nats, shape (batch,).

  With `chunk_size`, samples are drawn `chunk_size` at a time in a compiled loop
  and combined by a running log-sum-exp, so k = 5000 fits in memory.
  """
  if chunk_size is None or chunk_size >= num_samples:
    log_w = log_importance_weights(apply_fn, params, x, key, num_samples)
    return jax.nn.logsumexp(log_w, axis=1) - math.log(num_samples)
  num_chunks = -(-num_samples // chunk_size)

  def body(running, chunk):
    log_w = log_importance_weights(apply_fn, params, x, key, chunk_size, chunk * chunk_size)
    valid = chunk * chunk_size + jnp.arange(chunk_size) < num_samples
    log_w = jnp.where(valid[None, :], log_w, -jnp.inf)
    return jnp.logaddexp(running, jax.nn.logsumexp(log_w, axis=1)), None

  init = jnp.full((x.shape[0],), -jnp.inf, x.dtype)
  total, _ = jax.lax.scan(body, init, jnp.arange(num_chunks))
  return total - math.log(num_samples)
