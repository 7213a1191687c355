"""Deep Boltzmann machines with two hidden layers (Salakhutdinov & Hinton 2009).

Params {"W1": (n_v, n_1), "W2": (n_1, n_2), "b": (n_v,), "c1": (n_1,), "c2": (n_2,)}:
  E(v, h1, h2) = -vᵀW1h1 - h1ᵀW2h2 - bᵀv - c1ᵀh1 - c2ᵀh2.
Summing h1 out: log p*(v, h2) = bᵀv + c2ᵀh2 + Σ_j softplus(c1_j + (vᵀW1)_j + (W2h2)_j).
Mean field q(h1, h2 | v) = Π Bern(μ1) Bern(μ2) with the fixed point
  μ1 = σ(c1 + vᵀW1 + W2μ2),  μ2 = σ(c2 + μ1ᵀW2),
gives log p(v) ≥ -E_q[E(v, h)] + H(q) - log Z.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax.keys import as_typed_key, bernoulli, example_keys
from gen_jax.metrics.likelihood import importance_log_mean

MAX_ENUMERATED_UNITS = 22
ENTROPY_EPS = 1e-7


def init_params(key, n_visible, n_hidden1, n_hidden2, scale=0.01):
  k1, k2 = jax.random.split(as_typed_key(key))
  return {"W1": scale * jax.random.normal(k1, (n_visible, n_hidden1)),
          "W2": scale * jax.random.normal(k2, (n_hidden1, n_hidden2)),
          "b": jnp.zeros(n_visible), "c1": jnp.zeros(n_hidden1), "c2": jnp.zeros(n_hidden2)}


def from_pretrained_rbms(bottom, top):
  """A DBM from two RBMs pre-trained with weight doubling (bottom: v-h1 trained with 2W1
  in its up-pass, top: h1-h2 trained with 2W2 in its down-pass); each h1 bias is the mean
  of the two RBMs' h1 biases (Salakhutdinov & Hinton 2009)."""
  return {"W1": bottom["W"], "W2": top["W"], "b": bottom["b"],
          "c1": 0.5 * (bottom["c"] + top["b"]), "c2": top["c"]}


def energy(params, v, h1, h2):
  return -(jnp.einsum("bi,ij,bj->b", v, params["W1"], h1)
           + jnp.einsum("bi,ij,bj->b", h1, params["W2"], h2)
           + v @ params["b"] + h1 @ params["c1"] + h2 @ params["c2"])


def log_unnormalized_v_h2(params, v, h2, beta=1.0):
  """log p*_β(v, h2) with h1 summed out."""
  return beta * (v @ params["b"] + h2 @ params["c2"]) + jnp.sum(
      jax.nn.softplus(beta * (params["c1"] + v @ params["W1"] + h2 @ params["W2"].T)), -1)


def mean_field(params, v, num_iters: int = 10):
  """Mean-field fixed-point iterations from the bottom-up initialisation; returns (μ1, μ2)."""
  mu1 = jax.nn.sigmoid(params["c1"] + v @ params["W1"])
  mu2 = jax.nn.sigmoid(params["c2"] + mu1 @ params["W2"])

  def body(_, mus):
    mu1, mu2 = mus
    mu1 = jax.nn.sigmoid(params["c1"] + v @ params["W1"] + mu2 @ params["W2"].T)
    return mu1, jax.nn.sigmoid(params["c2"] + mu1 @ params["W2"])

  return jax.lax.fori_loop(0, num_iters, body, (mu1, mu2))


def _bernoulli_entropy(mu):
  mu = jnp.clip(mu, ENTROPY_EPS, 1.0 - ENTROPY_EPS)
  return -jnp.sum(mu * jnp.log(mu) + (1 - mu) * jnp.log1p(-mu), -1)


def variational_lower_bound(params, v, log_z, num_iters: int = 10):
  """-E_q[E(v, h)] + H(q) - log Z with the mean-field q, per example."""
  mu1, mu2 = mean_field(params, v, num_iters)
  return (-energy(params, v, mu1, mu2) + _bernoulli_entropy(mu1) + _bernoulli_entropy(mu2) - log_z)


def gibbs_step(params, state, key, beta=1.0, base_visible_bias=None):
  """h1 | (v, h2), then v | h1 and h2 | h1, at inverse temperature β (towards a base-rate
  visible model (1-β) b_A when given)."""
  v, h1, h2 = state
  k1, kv, k2 = jax.random.split(key, 3)
  h1 = bernoulli(k1, jax.nn.sigmoid(beta * (params["c1"] + v @ params["W1"] + h2 @ params["W2"].T))).astype(v.dtype)
  v_logits = beta * (params["b"] + h1 @ params["W1"].T)
  if base_visible_bias is not None:
    v_logits = v_logits + (1.0 - beta) * base_visible_bias
  v = bernoulli(kv, jax.nn.sigmoid(v_logits)).astype(v.dtype)
  h2 = bernoulli(k2, jax.nn.sigmoid(beta * (params["c2"] + h1 @ params["W2"]))).astype(v.dtype)
  return v, h1, h2


def log_partition_exact(params):
  """log Z = logsumexp over (v, h2) of log p*(v, h2) (tiny models only)."""
  n_v, n_2 = params["W1"].shape[0], params["W2"].shape[1]
  if n_v + n_2 > MAX_ENUMERATED_UNITS:
    raise ValueError(f"enumerating 2^{n_v + n_2} states: at most {MAX_ENUMERATED_UNITS} units in v and h2")
  index = jnp.arange(1 << (n_v + n_2))
  states = ((index[:, None] >> jnp.arange(n_v + n_2)[None, :]) & 1).astype(params["W1"].dtype)
  return jax.nn.logsumexp(log_unnormalized_v_h2(params, states[:, :n_v], states[:, n_v:]))


def ais_log_partition(params, key, num_chains: int = 100, betas=None, base_visible_bias=None):
  """AIS estimate of log Z, annealing p*_β(v, h2) ∝ e^{(1-β) b_Aᵀv} p*(v, h2)^β with h1 summed
  out, from the base model (visible biases b_A, all weights and hidden biases 0;
  log Z_0 = Σ softplus(b_A) + (n_1 + n_2) log 2). Returns (log Ẑ, standard error)."""
  from gen_jax.boltzmann.rbm import standard_ais_betas
  key = as_typed_key(key)
  n_v, n_1 = params["W1"].shape
  n_2 = params["W2"].shape[1]
  dtype = params["W1"].dtype
  base = jnp.zeros(n_v, dtype) if base_visible_bias is None else jnp.asarray(base_visible_bias, dtype)
  betas = jnp.asarray(standard_ais_betas() if betas is None else betas, dtype)
  log_z0 = jnp.sum(jax.nn.softplus(base)) + (n_1 + n_2) * math.log(2.0)
  k_v, k_h2, k_run = jax.random.split(key, 3)
  v = bernoulli(k_v, jax.nn.sigmoid(base), (num_chains, n_v)).astype(dtype)
  h2 = bernoulli(k_h2, 0.5, (num_chains, n_2)).astype(dtype)
  log_p = lambda v, h2, beta: (1.0 - beta) * v @ base + log_unnormalized_v_h2(params, v, h2, beta)

  def step(carry, inputs):
    v, h2, log_w = carry
    k, beta_prev, beta = inputs
    log_w = log_w + log_p(v, h2, beta) - log_p(v, h2, beta_prev)
    v, _, h2 = gibbs_step(params, (v, jnp.zeros((num_chains, n_1), dtype), h2),
                          jax.random.fold_in(k_run, k), beta, base)
    return (v, h2, log_w), None

  inputs = (jnp.arange(betas.shape[0] - 1), betas[:-1], betas[1:])
  (_, _, log_w), _ = jax.lax.scan(step, (v, h2, jnp.zeros(num_chains, dtype)), inputs)
  log_mean_w, std_err = importance_log_mean(log_w)
  return log_z0 + log_mean_w, std_err


def pcd_loss(params, v, chains, row_keys, mean_field_iters: int = 10, gibbs_steps: int = 1):
  """The DBM learning rule (Salakhutdinov & Hinton 2009) as a surrogate loss, one function
  for the trainer and the tests:

      L = mean E(v, sg(μ1), sg(μ2)) − mean E(sg(ṽ, h̃1, h̃2)),

  μ from `mean_field_iters` mean-field updates (positive phase), (ṽ, h̃1, h̃2) the persistent
  chains after `gibbs_steps` Gibbs sweeps (negative phase; chain j's sweep s keyed by
  fold_in(row_keys[j], s)). −∇L is the update <·>_mean-field − <·>_chains.
  Returns (loss, (μ1, μ2), new chains)."""
  mu1, mu2 = jax.lax.stop_gradient(mean_field(params, v, mean_field_iters))
  frozen = jax.lax.stop_gradient(params)

  def chain(v_j, h1_j, h2_j, key_j):
    state = (v_j[None], h1_j[None], h2_j[None])
    for s in range(gibbs_steps):
      state = gibbs_step(frozen, state, jax.random.fold_in(key_j, s))
    return tuple(t[0] for t in state)

  new_chains = jax.vmap(chain)(*chains, row_keys)
  loss = jnp.mean(energy(params, v, mu1, mu2)) - jnp.mean(energy(params, *new_chains))
  return loss, (mu1, mu2), new_chains


def gradients(params, v, chains, key, mean_field_iters: int = 10, gibbs_steps: int = 1):
  """Positive phase by mean field, negative phase by persistent Gibbs chains (v, h1, h2):
  −∇ of `pcd_loss` (row j keyed by fold_in(key, j)). Returns (ascent direction of the
  variational bound's gradient estimate, new chains)."""
  row_keys = example_keys(key, chains[0].shape[0])

  def surrogate(p):
    loss, _, new_chains = pcd_loss(p, v, chains, row_keys, mean_field_iters, gibbs_steps)
    return loss, new_chains

  grads, new_chains = jax.grad(surrogate, has_aux=True)(params)
  return jax.tree.map(jnp.negative, grads), new_chains
