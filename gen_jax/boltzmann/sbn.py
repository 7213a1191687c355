"""Sigmoid belief nets with two hidden layers, trained by wake-sleep (Hinton et al. 1995).

Generative p(h2) p(h1 | h2) p(v | h1), all factorial Bernoulli:
  p(h2) = Bern(σ(a2)),  p(h1 | h2) = Bern(σ(b1 + h2 W2)),  p(v | h1) = Bern(σ(b0 + h1 W1)).
Recognition q(h1 | v) = Bern(σ(r1 + v R1)),  q(h2 | h1) = Bern(σ(r2 + h1 R2)).
Wake: h ~ q(·|v), ascend log p(v, h) in the generative params. Sleep: (h2, h1, v) ~ p,
ascend log q(h | v) in the recognition params. The posterior of a directed net is not
factorial (explaining away), which is what q can only approximate.
log p(v) ≈ log (1/k) Σ_s p(v, h_s) / q(h_s | v), h_s ~ q: a lower bound rising with k.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax.distributions import bernoulli_log_prob
from gen_jax.keys import as_typed_key, bernoulli, example_keys


def init_params(key, n_visible, n_hidden1, n_hidden2, scale=0.01):
  keys = jax.random.split(as_typed_key(key), 4)
  normal = lambda k, shape: scale * jax.random.normal(k, shape)
  generative = {"a2": jnp.zeros(n_hidden2), "W2": normal(keys[0], (n_hidden2, n_hidden1)),
                "b1": jnp.zeros(n_hidden1), "W1": normal(keys[1], (n_hidden1, n_visible)),
                "b0": jnp.zeros(n_visible)}
  recognition = {"R1": normal(keys[2], (n_visible, n_hidden1)), "r1": jnp.zeros(n_hidden1),
                 "R2": normal(keys[3], (n_hidden1, n_hidden2)), "r2": jnp.zeros(n_hidden2)}
  return generative, recognition


def log_joint(gen, v, h1, h2):
  """log p(v, h1, h2), per example."""
  return (bernoulli_log_prob(h2, jnp.broadcast_to(gen["a2"], h2.shape)).sum(-1)
          + bernoulli_log_prob(h1, gen["b1"] + h2 @ gen["W2"]).sum(-1)
          + bernoulli_log_prob(v, gen["b0"] + h1 @ gen["W1"]).sum(-1))


def log_recognition(rec, v, h1, h2):
  """log q(h1, h2 | v), per example."""
  return (bernoulli_log_prob(h1, rec["r1"] + v @ rec["R1"]).sum(-1)
          + bernoulli_log_prob(h2, rec["r2"] + h1 @ rec["R2"]).sum(-1))


def sample_recognition(rec, v, key):
  k1, k2 = jax.random.split(key)
  h1 = bernoulli(k1, jax.nn.sigmoid(rec["r1"] + v @ rec["R1"])).astype(v.dtype)
  h2 = bernoulli(k2, jax.nn.sigmoid(rec["r2"] + h1 @ rec["R2"])).astype(v.dtype)
  return h1, h2


def sample_generative(gen, key, num_samples: int):
  """Ancestral samples (v, h1, h2) and p(v = 1 | h1)."""
  k2, k1, kv = jax.random.split(as_typed_key(key), 3)
  dtype = gen["W1"].dtype
  h2 = bernoulli(k2, jax.nn.sigmoid(gen["a2"]), (num_samples, gen["a2"].shape[0])).astype(dtype)
  h1 = bernoulli(k1, jax.nn.sigmoid(gen["b1"] + h2 @ gen["W2"])).astype(dtype)
  probs = jax.nn.sigmoid(gen["b0"] + h1 @ gen["W1"])
  return bernoulli(kv, probs).astype(dtype), h1, h2, probs


def wake_sleep_loss(params, v, wake_keys, sleep_keys):
  """Wake-sleep (Hinton et al. 1995) as one surrogate loss over params = {"gen", "rec"}, one
  function for the trainer and the tests:

      L = −mean log p(v, sg(h))  −  mean log q(sg(h̃) | sg(ṽ)),   h ~ q(·|v),  (ṽ, h̃) ~ p,

  whose −∇ is the wake update of the generative parameters and the sleep update of the
  recognition parameters (each term depends on one set only). Example j's wake draw uses
  wake_keys[j]; dream j (len(sleep_keys) dreams) uses sleep_keys[j].
  Returns (loss, named terms)."""
  rec, gen = jax.lax.stop_gradient(params["rec"]), jax.lax.stop_gradient(params["gen"])
  h1, h2 = jax.vmap(lambda x, k: tuple(t[0] for t in sample_recognition(rec, x[None], k)))(v, wake_keys)
  dream = jax.vmap(lambda k: tuple(t[0] for t in sample_generative(gen, k, 1)[:3]))(sleep_keys)
  wake = jnp.mean(log_joint(params["gen"], v, h1, h2))
  sleep = jnp.mean(log_recognition(params["rec"], *dream))
  gap = jnp.mean(log_joint(gen, v, h1, h2) - log_recognition(rec, v, h1, h2))
  return -(wake + sleep), {"wake_log_joint": wake, "sleep_log_recognition": sleep,
                           "elbo_one_sample": gap}


def wake_sleep_gradients(gen, rec, v, key, num_dreams: int | None = None):
  """(generative ascent direction from the wake phase, recognition ascent direction from the
  sleep phase): −∇ of `wake_sleep_loss`, example j keyed by fold_in(fold_in(key, 0), j) and
  dream j by fold_in(fold_in(key, 1), j)."""
  key = as_typed_key(key)
  wake_keys = example_keys(jax.random.fold_in(key, 0), v.shape[0])
  sleep_keys = example_keys(jax.random.fold_in(key, 1), num_dreams or v.shape[0])
  grads = jax.grad(lambda p: wake_sleep_loss(p, v, wake_keys, sleep_keys)[0])({"gen": gen, "rec": rec})
  return jax.tree.map(jnp.negative, grads["gen"]), jax.tree.map(jnp.negative, grads["rec"])


def log_prob_importance(gen, rec, v, key, num_samples: int):
  """log (1/k) Σ_s p(v, h_s) / q(h_s | v) with h_s ~ q(· | v), per example."""
  keys = example_keys(key, v.shape[0])

  def per_example(x, k):
    def one(s):
      h1, h2 = sample_recognition(rec, x[None], jax.random.fold_in(k, s))
      return (log_joint(gen, x[None], h1, h2) - log_recognition(rec, x[None], h1, h2))[0]
    return jax.nn.logsumexp(jax.vmap(one)(jnp.arange(num_samples))) - math.log(num_samples)

  return jax.vmap(per_example)(v, keys)


def log_prob_exact(gen, v):
  """log p(v) by enumerating (h1, h2) (tiny models only)."""
  n1, n2 = gen["W1"].shape[0], gen["W2"].shape[0]
  index = jnp.arange(1 << (n1 + n2))
  states = ((index[:, None] >> jnp.arange(n1 + n2)[None, :]) & 1).astype(v.dtype)
  h1, h2 = states[:, :n1], states[:, n1:]
  per_state = jax.vmap(lambda a, b: log_joint(gen, v, jnp.broadcast_to(a, (v.shape[0], n1)),
                                              jnp.broadcast_to(b, (v.shape[0], n2))))(h1, h2)
  return jax.nn.logsumexp(per_state, axis=0)
