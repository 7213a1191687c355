"""Deep belief nets (Hinton, Osindero & Teh 2006): a stack of RBMs, bottom first.

layers[l] = {"W": (n_l, n_{l+1}), "b": (n_l,), "c": (n_{l+1},)}. The top RBM (layers[-1])
is undirected; below it each layer is a directed sigmoid belief layer
p(h_{l} | h_{l+1}) = σ(b_l + W_l h_{l+1}) using that RBM's visible biases. Recognition:
q(h_{l+1} | h_l) = σ(c_l + h_l W_l) (the RBMs' up-passes).

Lower bound on log p(v) (Salakhutdinov & Murray 2008, with h = (h_1, ..., h_{L-1}) ~ q):
  log p(v) ≥ E_q[Σ_{l<L-1} log p(h_l | h_{l+1}) + (-F_top(h_{L-1})) - log Z_top - log q(h | v)],
with h_0 = v; the importance-weighted form log mean_k w_k tightens it as k grows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax import distributions
from gen_jax.boltzmann import rbm
from gen_jax.keys import as_typed_key, bernoulli, example_keys


def up_pass(layers, v):
  """Mean-field probabilities of every hidden layer, bottom-up."""
  activations = [v]
  for params in layers:
    activations.append(rbm.hidden_probs(params, activations[-1]))
  return activations[1:]


def sample(layers, key, num_samples: int, num_gibbs: int, top_visible=None):
  """Gibbs in the top RBM (from `top_visible` or a uniform start), then a top-down pass;
  returns (binary samples of v, p(v = 1 | h_1))."""
  key = as_typed_key(key)
  top = layers[-1]
  key_init, key_gibbs, key_down = jax.random.split(key, 3)
  start = (bernoulli(key_init, 0.5, (num_samples, top["W"].shape[0])).astype(top["W"].dtype)
           if top_visible is None else top_visible)
  h = rbm.gibbs_chain(top, start, key_gibbs, num_gibbs)
  probs = h
  for depth, params in enumerate(reversed(layers[:-1])):
    probs = rbm.visible_probs(params, h)
    h = bernoulli(jax.random.fold_in(key_down, depth), probs).astype(h.dtype)
  return h, probs


def _log_weight(layers, v, key, log_z_top):
  """One-sample log w = log p(v, h) - log q(h | v) for a batch (h drawn up the stack)."""
  log_w = jnp.zeros(v.shape[0], v.dtype)
  below = v
  for depth, params in enumerate(layers[:-1]):
    q = rbm.hidden_probs(params, below)
    h = bernoulli(jax.random.fold_in(key, depth), q).astype(v.dtype)
    log_p_below = distributions.bernoulli_log_prob(below, h @ params["W"].T + params["b"]).sum(-1)
    log_q = distributions.bernoulli_log_prob(h, below @ params["W"] + params["c"]).sum(-1)
    log_w = log_w + log_p_below - log_q
    below = h
  return log_w - rbm.free_energy(layers[-1], below) - log_z_top


def log_prob_bound(layers, v, key, log_z_top, num_samples: int = 1):
  """Per-example lower bound on log p(v): the mean (num_samples draws of h ~ q) of log w."""
  keys = example_keys(key, v.shape[0])
  per_sample = jax.vmap(lambda s: jax.vmap(
      lambda x, k: _log_weight(layers, x[None], jax.random.fold_in(k, s), log_z_top)[0])(v, keys))(
          jnp.arange(num_samples))
  return per_sample.mean(0)


def log_prob_importance(layers, v, key, log_z_top, num_samples: int):
  """log (1/k) Σ_s w_s: a stochastic lower bound that rises to log p(v) as k grows."""
  keys = example_keys(key, v.shape[0])
  log_w = jax.vmap(lambda s: jax.vmap(
      lambda x, k: _log_weight(layers, x[None], jax.random.fold_in(k, s), log_z_top)[0])(v, keys))(
          jnp.arange(num_samples))
  return jax.nn.logsumexp(log_w, axis=0) - math.log(num_samples)
