"""Restricted Boltzmann machines with Bernoulli units (and Gaussian visible units).

Params: {"W": (n_visible, n_hidden), "b": (n_visible,), "c": (n_hidden,)} for
  E(v, h) = -vᵀWh - bᵀv - cᵀh,   p(v, h) = e^{-E(v, h)} / Z,
  F(v) = -bᵀv - Σ_j softplus(c_j + (vᵀW)_j),   p(v) = e^{-F(v)} / Z.
Conditionals: p(h_j = 1 | v) = σ(c_j + (vᵀW)_j),  p(v_i = 1 | h) = σ(b_i + (Wh)_i).

Gaussian–Bernoulli (unit variance): E(v, h) = ½|v - b|² - vᵀWh - cᵀh,
  p(v | h) = N(b + Wh, I),  F(v) = ½|v - b|² - Σ_j softplus(c_j + (vᵀW)_j).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.keys import as_typed_key, bernoulli, example_keys, fold_in
from gen_jax.metrics.likelihood import importance_log_mean

# Enumerated configurations per block in `log_partition_exact` (memory bound).
ENUMERATION_BLOCK = 1 << 12
MAX_ENUMERATED_UNITS = 24
# Salakhutdinov & Murray (2008): β from 0 to 0.5 in steps of 1e-3, to 0.9 in 1e-4, to 1 in 1e-5.
STANDARD_AIS_SEGMENTS = ((0.0, 0.5, 1e-3), (0.5, 0.9, 1e-4), (0.9, 1.0, 1e-5))


def init_params(key, n_visible: int, n_hidden: int, scale: float = 0.01, visible_bias=None):
  """W ~ N(0, scale²); b = logit of the data marginals if given (Hinton 2010), else 0; c = 0."""
  b = jnp.zeros(n_visible) if visible_bias is None else jnp.asarray(visible_bias, jnp.float32)
  return {"W": scale * jax.random.normal(as_typed_key(key), (n_visible, n_hidden)), "b": b,
          "c": jnp.zeros(n_hidden)}


def base_rate_bias(data, smoothing: float = 0.05):
  """Visible biases log(p / (1 - p)) of the (smoothed) pixel marginals of binary data."""
  p = (jnp.mean(data, axis=0) * data.shape[0] + smoothing) / (data.shape[0] + 2 * smoothing)
  return jnp.log(p) - jnp.log1p(-p)


def replicate(params, visible_copies: int = 1, hidden_copies: int = 1):
  """The RBM with each visible unit copied `visible_copies` times and each hidden unit
  `hidden_copies` times, all copies tied: W' = [[W ... W]; ...] (kv n_v x kh n_h). Trained on
  tiled data, 2 visible copies give the up-pass σ(c + 2vᵀW) and 2 hidden copies the
  down-pass σ(b + 2Wh): the weight-doubled modules that pre-train a DBM (Salakhutdinov &
  Hinton 2009). Gradients flow back to the shared W, b, c."""
  return {"W": jnp.tile(params["W"], (visible_copies, hidden_copies)),
          "b": jnp.tile(params["b"], visible_copies), "c": jnp.tile(params["c"], hidden_copies)}


def energy(params, v, h):
  """E(v, h) = -vᵀWh - bᵀv - cᵀh, shape (batch,)."""
  return -jnp.einsum("bi,ij,bj->b", v, params["W"], h) - v @ params["b"] - h @ params["c"]


def hidden_preactivation(params, v):
  """a = c + vᵀW, shape (batch, n_hidden): p(h = 1 | v) = σ(a), F(v) = -bᵀv - Σ_j softplus(a_j)."""
  return v @ params["W"] + params["c"]


def free_energy(params, v, preactivation=None):
  """F(v) = -bᵀv - Σ_j softplus(c_j + (vᵀW)_j), shape (batch,); `preactivation` = c + vᵀW
  when the caller has it already (one product instead of two)."""
  a = hidden_preactivation(params, v) if preactivation is None else preactivation
  return -v @ params["b"] - jnp.sum(jax.nn.softplus(a), axis=-1)


def hidden_probs(params, v, beta=1.0):
  """p(h = 1 | v) = σ(β (c + vᵀW))."""
  return jax.nn.sigmoid(beta * hidden_preactivation(params, v))


def visible_probs(params, h, beta=1.0):
  """p(v = 1 | h) = σ(β (b + Wh))."""
  return jax.nn.sigmoid(beta * (h @ params["W"].T + params["b"]))


def sample_hidden(params, v, key, beta=1.0):
  return bernoulli(key, hidden_probs(params, v, beta)).astype(v.dtype)


def sample_visible(params, h, key, beta=1.0):
  return bernoulli(key, visible_probs(params, h, beta)).astype(h.dtype)


def gibbs_step(params, v, key):
  """One block Gibbs sweep v -> h -> v'; returns (v', h)."""
  key_h, key_v = jax.random.split(key)
  h = sample_hidden(params, v, key_h)
  return sample_visible(params, h, key_v), h


def gibbs_chain(params, v, key, num_steps: int, step=gibbs_step):
  """`num_steps` block Gibbs sweeps (`step`: gibbs_step or gaussian_gibbs_step) in a
  compiled loop."""
  def body(i, v):
    return step(params, v, jax.random.fold_in(key, i))[0]
  return jax.lax.fori_loop(0, num_steps, body, v)


def _binary_configurations(num_units: int, start, count: int, dtype):
  """Rows start..start+count-1 of the 2^n binary configurations (bit j of the row index)."""
  index = start + jnp.arange(count)
  return ((index[:, None] >> jnp.arange(num_units)[None, :]) & 1).astype(dtype)


def log_partition_exact(params):
  """log Z by enumerating the smaller layer (≤ 24 units), summing the other out analytically:
  over h: log Z = logsumexp_h [cᵀh + Σ_i softplus(b_i + (Wh)_i)]; over v: logsumexp_v [-F(v)]."""
  n_visible, n_hidden = params["W"].shape
  over_hidden = n_hidden <= n_visible
  n = n_hidden if over_hidden else n_visible
  if n > MAX_ENUMERATED_UNITS:
    raise ValueError(f"exact log Z enumerates 2^{n} configurations; at most "
                     f"{MAX_ENUMERATED_UNITS} units in the smaller layer")

  def unnormalized(config):
    if over_hidden:
      return config @ params["c"] + jnp.sum(jax.nn.softplus(config @ params["W"].T + params["b"]), -1)
    return -free_energy(params, config)

  return _logsumexp_over_configurations(unnormalized, n, params["W"].dtype)


def _logsumexp_over_configurations(log_weight, num_units: int, dtype):
  """logsumexp of log_weight(configs) over all 2^num_units binary configurations, in blocks of
  ENUMERATION_BLOCK rows (memory bound)."""
  total = 1 << num_units
  block = min(total, ENUMERATION_BLOCK)

  def block_lse(i):
    return jax.nn.logsumexp(log_weight(_binary_configurations(num_units, i * block, block, dtype)))

  return jax.nn.logsumexp(jax.lax.map(block_lse, jnp.arange(total // block)))


def log_prob(params, v, log_z):
  """log p(v) = -F(v) - log Z."""
  return -free_energy(params, v) - log_z


def standard_ais_betas():
  """The ≈14,500-temperature schedule of Salakhutdinov & Murray (2008), ending at 1."""
  parts = [np.arange(start, stop, step) for start, stop, step in STANDARD_AIS_SEGMENTS]
  return np.concatenate(parts + [np.ones(1)]).astype(np.float32)


def _ais_log_unnormalized(params, v, beta, base_bias):
  """log p*_β(v) = (1-β) b_Aᵀv + β bᵀv + Σ_j softplus(β (c_j + (vᵀW)_j))."""
  return ((1.0 - beta) * v @ base_bias + beta * v @ params["b"]
          + jnp.sum(jax.nn.softplus(beta * (v @ params["W"] + params["c"])), axis=-1))


def ais_log_partition(params, key, num_chains: int = 100, betas=None, base_visible_bias=None):
  """Annealed importance sampling estimate of log Z (Salakhutdinov & Murray 2008).

  Anneals from the base-rate RBM A (W = 0, visible biases b_A, hidden biases 0; its
  log Z_A = Σ_i softplus(b_A,i) + n_hidden log 2) to the model through
  p*_β(v) ∝ e^{(1-β) b_Aᵀv} e^{β bᵀv} Π_j (1 + e^{β (c_j + (vᵀW)_j)}),
  with one block Gibbs sweep of p_β per temperature. Returns (log Ẑ, its standard error
  by the delta method: std(w) / (√M mean(w))).
  """
  key = as_typed_key(key)
  n_visible, n_hidden = params["W"].shape
  dtype = params["W"].dtype
  base = jnp.zeros(n_visible, dtype) if base_visible_bias is None else jnp.asarray(base_visible_bias, dtype)
  betas = jnp.asarray(standard_ais_betas() if betas is None else betas, dtype)
  log_z_base = jnp.sum(jax.nn.softplus(base)) + n_hidden * math.log(2.0)
  key_init, key_run = jax.random.split(key)
  v = bernoulli(key_init, jax.nn.sigmoid(base), (num_chains, n_visible)).astype(dtype)

  def step(carry, inputs):
    v, log_w = carry
    k, beta_prev, beta = inputs
    log_w = log_w + (_ais_log_unnormalized(params, v, beta, base)
                     - _ais_log_unnormalized(params, v, beta_prev, base))
    key_h, key_v = jax.random.split(jax.random.fold_in(key_run, k))
    h = bernoulli(key_h, hidden_probs(params, v, beta)).astype(dtype)
    v_logits = (1.0 - beta) * base + beta * (h @ params["W"].T + params["b"])
    v = bernoulli(key_v, jax.nn.sigmoid(v_logits)).astype(dtype)
    return (v, log_w), None

  inputs = (jnp.arange(betas.shape[0] - 1), betas[:-1], betas[1:])
  (_, log_w), _ = jax.lax.scan(step, (v, jnp.zeros(num_chains, dtype)), inputs)
  log_mean_w, std_err = importance_log_mean(log_w)
  return log_z_base + log_mean_w, std_err


def sample_hidden_rows(probs, row_keys, draw: int):
  """h_j ~ Bernoulli(probs_j) with chain j's key for draw number `draw`."""
  return jax.vmap(bernoulli)(fold_in(row_keys, draw), probs).astype(probs.dtype)


def negative_chain(params, h, row_keys, k: int, sample_visible_fn=sample_visible):
  """v_1 ~ p(v | h_0 = h), then k - 1 sweeps v -> h -> v; returns v_k. Draw v_i is number
  2i - 1 and h_i number 2i of each chain's keys."""
  def draw_visible(h, i):
    return jax.vmap(lambda h_j, key_j: sample_visible_fn(params, h_j[None], key_j)[0])(
        h, fold_in(row_keys, 2 * i - 1))

  def sweep(i, v):
    return draw_visible(sample_hidden_rows(hidden_probs(params, v), row_keys, 2 * i), i + 1)

  return jax.lax.fori_loop(1, k, sweep, draw_visible(h, 1))


CHAIN_STATES = ("hidden", "visible")


def cd_loss(params, v, row_keys, k: int = 1, chains=None, chain_state: str = "visible",
            free_energy_fn=None, sample_visible_fn=sample_visible):
  """The CD-k / PCD-k learning rule as a surrogate loss (one function for the trainer and the
  tests):

      L = mean_data F(v) − mean_chains F(sg(v_k)),   −∇L = the CD/PCD ascent direction,

  since ∂F/∂W = −v σ(c + vᵀW)ᵀ. The negative phase starts from h_0 and draws v_1 ~ p(v | h_0),
  then k − 1 sweeps v → h → v. h_0 ~ p(h | v_0) with v_0 the data (`chains=None`: CD) or the
  persistent visible states (`chain_state="visible"`: Tieleman 2008, 2k + 4 products), or h_0
  is the carried hidden state (`"hidden"`, as scikit-learn keeps its chains: one product gives
  p(h | v) of data and chains together and the next state is drawn from it, 2k + 3 products).
  Chain j's draw s (h_i: s = 2i, v_i: s = 2i − 1) is keyed by fold_in(row_keys[j], s).

  Returns (loss, v_k, the data's hidden pre-activation c + vᵀW, the new chains).
  `free_energy_fn(params, v, preactivation)` and `sample_visible_fn` choose the visible units
  (Bernoulli by default; `gaussian_free_energy` / `gaussian_sample_visible`).
  """
  free_energy_fn = free_energy_fn or free_energy
  if chain_state not in CHAIN_STATES:
    raise ValueError(f"unknown chain_state {chain_state!r}; choose from {list(CHAIN_STATES)}")
  if chains is not None and chain_state == "hidden":
    v_model = jax.lax.stop_gradient(negative_chain(params, chains, row_keys, k, sample_visible_fn))
    a_data, a_model = jnp.split(hidden_preactivation(params, jnp.concatenate([v, v_model])), 2)
  else:
    a_data = hidden_preactivation(params, v)
    a_start = a_data if chains is None else hidden_preactivation(params, chains)
    h_0 = sample_hidden_rows(jax.nn.sigmoid(jax.lax.stop_gradient(a_start)), row_keys, 0)
    v_model = jax.lax.stop_gradient(negative_chain(params, h_0, row_keys, k, sample_visible_fn))
    a_model = hidden_preactivation(params, v_model)
  loss = jnp.mean(free_energy_fn(params, v, a_data)) - jnp.mean(free_energy_fn(params, v_model, a_model))
  if chains is None:
    new_chains = None
  elif chain_state == "visible":
    new_chains = v_model
  else:
    new_chains = sample_hidden_rows(jax.nn.sigmoid(jax.lax.stop_gradient(a_model)), row_keys, 2 * k)
  return loss, v_model, a_data, new_chains


def cd_gradients(params, v, key, k: int = 1, persistent_chain=None):
  """CD-k (or PCD-k from the visible states `persistent_chain`) estimate of ∇ log-likelihood
  (ascent direction): −∇ of `cd_loss`, i.e.

      ∂/∂W = <v hᵀ>_data − <v hᵀ>_model,  ∂/∂b = <v>_data − <v>_model,  ∂/∂c = <h>_data − <h>_model,

  with p(h | v) in place of sampled h in both phases; row j is keyed by fold_in(key, j).
  Returns (grads, new chain: v_k)."""
  row_keys = example_keys(key, v.shape[0])
  grads, v_model = jax.grad(lambda p: cd_loss(p, v, row_keys, k, persistent_chain)[:2], has_aux=True)(params)
  return jax.tree.map(jnp.negative, grads), v_model


def exact_log_likelihood_gradient(params, v):
  """∇ mean log p(v) by enumerating the visible layer (tiny models only): the data term
  minus the model expectation under the exact p(v)."""
  n_visible = params["W"].shape[0]
  if n_visible > MAX_ENUMERATED_UNITS:
    raise ValueError("exact gradients enumerate the visible layer: at most "
                     f"{MAX_ENUMERATED_UNITS} visible units")
  all_v = _binary_configurations(n_visible, 0, 1 << n_visible, params["W"].dtype)
  p_v = jax.nn.softmax(-free_energy(params, all_v))
  h_all = hidden_probs(params, all_v)
  h_data = hidden_probs(params, v)
  return {"W": v.T @ h_data / v.shape[0] - (all_v * p_v[:, None]).T @ h_all,
          "b": jnp.mean(v, 0) - p_v @ all_v,
          "c": jnp.mean(h_data, 0) - p_v @ h_all}


def pseudo_log_likelihood(params, v, key):
  """Stochastic pseudo-log-likelihood: D · log σ(F(ṽ) - F(v)), ṽ = v with one random
  bit flipped per example (as scikit-learn's BernoulliRBM.score_samples)."""
  n_visible = v.shape[1]
  flip = jax.random.randint(as_typed_key(key), (v.shape[0],), 0, n_visible)
  v_flipped = v.at[jnp.arange(v.shape[0]), flip].set(1.0 - v[jnp.arange(v.shape[0]), flip])
  return n_visible * jax.nn.log_sigmoid(free_energy(params, v_flipped) - free_energy(params, v))


def reconstruction_error(params, v):
  """Mean squared error of the mean-field reconstruction σ(b + W σ(c + vᵀW))."""
  return jnp.mean(jnp.sum(jnp.square(v - visible_probs(params, hidden_probs(params, v))), axis=-1))


# Gaussian–Bernoulli RBM (unit-variance visible units).

def gaussian_free_energy(params, v, preactivation=None):
  """F(v) = ½|v - b|² - Σ_j softplus(c_j + (vᵀW)_j); `preactivation` as in `free_energy`."""
  a = hidden_preactivation(params, v) if preactivation is None else preactivation
  return 0.5 * jnp.sum(jnp.square(v - params["b"]), -1) - jnp.sum(jax.nn.softplus(a), -1)


def gaussian_visible_mean(params, h):
  """E[v | h] = b + Wh (v | h ~ N(b + Wh, I))."""
  return h @ params["W"].T + params["b"]


def gaussian_sample_visible(params, h, key):
  """v ~ N(b + Wh, I)."""
  mean = gaussian_visible_mean(params, h)
  return mean + jax.random.normal(as_typed_key(key), mean.shape, mean.dtype)


def gaussian_gibbs_step(params, v, key):
  key_h, key_v = jax.random.split(as_typed_key(key))
  h = sample_hidden(params, v, key_h)
  return gaussian_sample_visible(params, h, key_v), h


def gaussian_log_partition_exact(params):
  """log Z of the unit-variance Gaussian–Bernoulli RBM by enumerating h (v integrated out):
  log Z = (D/2) log 2π + logsumexp_h [cᵀh + ½|b + Wh|² - ½|b|²]."""
  n_visible, n_hidden = params["W"].shape
  if n_hidden > MAX_ENUMERATED_UNITS:
    raise ValueError(f"exact log Z of a Gaussian–Bernoulli RBM enumerates 2^{n_hidden} hidden "
                     f"configurations; at most {MAX_ENUMERATED_UNITS} hidden units")

  def log_weight(h):
    return h @ params["c"] + 0.5 * jnp.sum(jnp.square(h @ params["W"].T + params["b"]), -1)

  return (0.5 * n_visible * math.log(2 * math.pi) - 0.5 * jnp.sum(jnp.square(params["b"]))
          + _logsumexp_over_configurations(log_weight, n_hidden, params["W"].dtype))
