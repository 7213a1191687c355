"""RBMs on binary images as a trainer task: CD-k or PCD-k through the free-energy surrogate.

The surrogate L = mean_data F(v) - mean_chains F(sg(v_model)) has ∇L = -(CD-k gradient):
∂F/∂W = -v σ(c + vᵀW)ᵀ, so minimising L ascends the CD/PCD log-likelihood estimate.
Persistent chains (one per batch row, keyed by that row's global stream position) are
carried and checkpointed by the trainer. Evaluation: AIS log Z (Salakhutdinov & Murray
2008) from the base-rate RBM of the training data, and the test log-likelihood
mean(-F(v)) - log Ẑ in nats.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.boltzmann import rbm
from gen_jax.data import evaluation_split, load_dataset
from gen_jax.data.transforms import check_binary
from gen_jax.keys import fold_in_indices
from gen_jax.training import Task, plots, train

NUM_FILTERS_SHOWN = 100
SAMPLE_CHAINS = 64
# Exact log Z alongside AIS when the smaller layer has at most this many units.
EXACT_LOG_Z_MAX_UNITS = 20


def chain_step(params, v, keys, k):
  """k block-Gibbs sweeps, chain j driven by keys[j]."""
  def one(v_j, key_j):
    return rbm.gibbs_chain(params, v_j[None], key_j, k)[0]
  return jax.vmap(one)(v, keys)


def _flat(x):
  return x.reshape(x.shape[0], -1)


def make_task(config, dataset) -> Task:
  m = config.model
  image_shape = tuple(dataset.element_shape)
  n_visible = math.prod(image_shape)
  transforms = tuple(config.data.transforms)
  persistent = m.method == "pcd"
  if m.method not in ("cd", "pcd"):
    raise ValueError(f"unknown model.method {m.method!r}; choose 'cd' or 'pcd'")

  def init(key, x):
    return rbm.init_params(key, n_visible, int(m.num_hidden), float(m.init_scale))

  def init_aux(key, x, params):
    return {"chains": _flat(x)} if persistent else {}

  def loss_fn(params, batch, key, aux):
    v = _flat(batch["x"])
    keys = fold_in_indices(key, batch["index"])
    start = aux["chains"] if persistent else v
    v_model = jax.lax.stop_gradient(chain_step(params, start, keys, int(m.k)))
    loss = jnp.mean(rbm.free_energy(params, v)) - jnp.mean(rbm.free_energy(params, v_model))
    terms = {"free_energy_gap": loss}
    if m.monitors:
      terms["reconstruction_error"] = rbm.reconstruction_error(params, v)
      terms["pseudo_log_likelihood"] = jnp.mean(rbm.pseudo_log_likelihood(
          params, v, jax.random.fold_in(keys[0], 1)))
    return loss, (terms, {"chains": v_model} if persistent else {})

  def check_data(x):
    check_binary(x, "a Bernoulli RBM")

  def split_data(split):
    """A whole split after the evaluation transforms (train: the binarization trained on)."""
    return evaluation_split(dataset, split, transforms, config.seed, flatten=True)

  def evaluate(params, dataset_, key, final):
    ais_key = key
    test = jnp.asarray(split_data("test"))
    metrics = {"test_reconstruction_error": float(rbm.reconstruction_error(params, test)),
               "test_mean_free_energy": float(jnp.mean(rbm.free_energy(params, test)))}
    if not final:
      return metrics
    train_data = jnp.asarray(split_data("train"))
    base = rbm.base_rate_bias(train_data)
    started = time.perf_counter()
    log_z, std_err = jax.jit(rbm.ais_log_partition, static_argnums=2)(
        params, ais_key, int(config.eval.ais_chains), None, base)
    log_z, std_err = float(log_z), float(std_err)
    test_ll = -float(jnp.mean(rbm.free_energy(params, test))) - log_z
    train_ll = -float(jnp.mean(rbm.free_energy(params, train_data))) - log_z
    per_example = -np.asarray(rbm.free_energy(params, test)) - log_z
    metrics.update({"ais_log_z": log_z, "ais_log_z_std_err": std_err,
                    "ais_chains": int(config.eval.ais_chains),
                    "ais_temperatures": int(rbm.standard_ais_betas().shape[0]),
                    "ais_seconds": time.perf_counter() - started,
                    "test_log_likelihood": test_ll, "train_log_likelihood": train_ll,
                    "test_log_likelihood_sem": float(per_example.std() / math.sqrt(len(per_example)))})
    if min(n_visible, int(m.num_hidden)) <= EXACT_LOG_Z_MAX_UNITS:
      exact = float(rbm.log_partition_exact(params))
      metrics["exact_log_z"] = exact
      metrics["exact_test_log_likelihood"] = -float(jnp.mean(rbm.free_energy(params, test))) - exact
    return metrics

  def write_figures(params, dataset_, prefix, key, final):
    filters = np.asarray(params["W"]).T[:NUM_FILTERS_SHOWN].reshape(-1, *image_shape)
    lo, hi = filters.min(axis=(1, 2, 3), keepdims=True), filters.max(axis=(1, 2, 3), keepdims=True)
    paths = [plots.save_image_grid((filters - lo) / (hi - lo + 1e-8), f"{prefix}_filters.png", 10)]
    start = jnp.asarray(split_data("test")[:SAMPLE_CHAINS])
    steps = int(config.eval.sample_gibbs_steps) if final else int(config.eval.sample_gibbs_steps) // 10
    v = rbm.gibbs_chain(params, start, jax.random.fold_in(key, 1), steps)
    h = rbm.sample_hidden(params, v, jax.random.fold_in(key, 2))
    probs = rbm.visible_probs(params, h).reshape(-1, *image_shape)
    paths.append(plots.save_image_grid(np.asarray(probs), f"{prefix}_samples.png", 8))
    return paths

  return Task(name=f"rbm-{m.method}{m.k}", init=init, loss_fn=loss_fn, check_data=check_data,
              write_figures=write_figures, evaluate=evaluate, init_aux=init_aux)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  dataset = load_dataset(config.data)
  return train(make_task(config, dataset), config, workdir, dataset, stop_after_step)
