"""RBMs on binary images as a trainer task: CD-k or PCD-k through the free-energy surrogate.

The surrogate L = mean_data F(v) - mean_chains F(sg(v_model)) has ∇L = -(CD-k gradient):
∂F/∂W = -v σ(c + vᵀW)ᵀ, so minimising L ascends the CD/PCD log-likelihood estimate.

The negative phase starts from hidden states h_0 and draws v_1 ~ p(v | h_0), then k - 1
sweeps v -> h -> v. h_0 is sampled from p(h | v_0) with v_0 the data (CD-k) or the
persistent chains' visible states (PCD-k, `model.persistent_state="visible"`: Tieleman 2008,
2k + 4 matrix products a step), or h_0 is the chains' hidden state (`"hidden"`, as
scikit-learn's BernoulliRBM keeps them): PCD then keeps h_k ~ p(h | v_k), sampled from the
pre-activations the loss computes anyway, and one product gives p(h | v) of data and chains
together, so a step costs 2k + 3 products (PCD-1: 5 instead of 6). Chain j's draw number s
(h_i: s = 2i, v_i: s = 2i - 1) is keyed by fold_in(fold_in(key, index_j), s), so a chain does
not depend on the batch size or the device count. Persistent states are carried and
checkpointed by the trainer. Evaluation: AIS log Z (Salakhutdinov & Murray 2008)
from the base-rate RBM of the training data, and the test log-likelihood mean(-F(v)) - log Ẑ
in nats.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.boltzmann import rbm
from gen_jax.data import evaluation_split, load_dataset
from gen_jax.data.transforms import check_binary
from gen_jax.keys import fold_in_indices
from gen_jax.training import Density, Task, plots, train

NUM_FILTERS_SHOWN = 100
# Where PCD keeps its chains between steps (model.persistent_state); see the module docstring.
PERSISTENT_STATES = rbm.CHAIN_STATES
SAMPLE_CHAINS = 64
# Exact log Z alongside AIS when the smaller layer has at most this many units.
EXACT_LOG_Z_MAX_UNITS = 20


def _flat(x):
  return x.reshape(x.shape[0], -1)


def _check_finite(x):
  if not np.all(np.isfinite(np.asarray(x))):
    raise ValueError("a Gaussian–Bernoulli RBM needs finite data")


@dataclasses.dataclass(frozen=True)
class VisibleUnits:
  """What differs between Bernoulli and unit-variance Gaussian visible units."""
  free_energy: Callable         # (params, v, preactivation=None) -> (batch,)
  gibbs_step: Callable
  sample_visible: Callable      # (params, h, key) -> v ~ p(v | h)
  visible_mean: Callable        # E[v | h]
  check_data: Callable          # (x) -> None, raises on data the units cannot model
  standardized: bool            # data are z-scored per pixel with the training statistics


VISIBLE_UNITS = {
    "bernoulli": VisibleUnits(rbm.free_energy, rbm.gibbs_step, rbm.sample_visible, rbm.visible_probs,
                              lambda x: check_binary(x, "a Bernoulli RBM"), False),
    "gaussian": VisibleUnits(rbm.gaussian_free_energy, rbm.gaussian_gibbs_step,
                             rbm.gaussian_sample_visible, rbm.gaussian_visible_mean, _check_finite,
                             True),
}


def gaussian_baselines(train, test) -> dict:
  """Test log-likelihoods (nats) of Gaussians fitted by maximum likelihood to `train`:
  diagonal and full covariance, for the Gaussian–Bernoulli RBM's table row."""
  mean = train.mean(0)
  var = train.var(0)
  diag = -0.5 * np.sum(np.log(2 * np.pi * var) + np.square(test - mean) / var, -1)
  cov = np.cov(train, rowvar=False, bias=True)
  _, log_det = np.linalg.slogdet(cov)
  centred = test - mean
  maha = np.sum(centred * np.linalg.solve(cov, centred.T).T, -1)
  full = -0.5 * (train.shape[1] * np.log(2 * np.pi) + log_det + maha)
  return {"diagonal_gaussian_test_log_likelihood": float(diag.mean()),
          "full_gaussian_test_log_likelihood": float(full.mean())}


def make_task(config, dataset) -> Task:
  m = config.model
  image_shape = tuple(dataset.element_shape)
  n_visible = math.prod(image_shape)
  transforms = tuple(config.data.transforms)
  persistent = m.method == "pcd"
  if m.method not in ("cd", "pcd"):
    raise ValueError(f"unknown model.method {m.method!r}; choose 'cd' or 'pcd'")
  if m.persistent_state not in PERSISTENT_STATES:
    raise ValueError(f"unknown model.persistent_state {m.persistent_state!r}; choose from "
                     f"{list(PERSISTENT_STATES)}")
  hidden_state = persistent and m.persistent_state == "hidden"
  if m.visible not in VISIBLE_UNITS:
    raise ValueError(f"unknown model.visible {m.visible!r}; choose from {sorted(VISIBLE_UNITS)}")
  units = VISIBLE_UNITS[m.visible]
  if units.standardized:  # per-pixel z-scores with the training split's statistics
    train_x = evaluation_split(dataset, "train", transforms, config.seed, flatten=True)
    pixel_mean = train_x.mean(0)
    pixel_std = np.maximum(train_x.std(0), float(m.min_pixel_std))
  else:
    pixel_mean, pixel_std = np.zeros(n_visible, np.float32), np.ones(n_visible, np.float32)
  log_std_sum = float(np.sum(np.log(pixel_std)))  # log |dv/dx|^-1: nats back in pixel units

  visible_copies, hidden_copies = int(m.visible_copies), int(m.hidden_copies)
  replicated = (visible_copies, hidden_copies) != (1, 1)

  def init(key, x):
    return rbm.init_params(key, n_visible, int(m.num_hidden), float(m.init_scale))

  def tiled(x):
    v = (_flat(x) - pixel_mean) / pixel_std if units.standardized else _flat(x)
    return jnp.tile(v, (1, visible_copies))

  def model_of(params):
    # With copies, the tied replicated RBM is trained on tiled data (weight-doubled modules).
    return rbm.replicate(params, visible_copies, hidden_copies) if replicated else params

  def init_carry(key, batch, params):
    """PCD: the chains' states, the first batch (visible) or h ~ p(h | first batch) (hidden),
    chain j keyed by its example's stream position."""
    if not persistent:
      return {}
    v = tiled(batch["x"])
    if not hidden_state:
      return {"visible_chains": v}
    probs = rbm.hidden_probs(model_of(params), v)
    return {"hidden_chains": rbm.sample_hidden_rows(probs, fold_in_indices(key, batch["index"]), 0)}

  def loss_fn(params, batch, key, carry):
    """rbm.cd_loss (the CD/PCD learning rule) on the batch, with its monitors."""
    model = model_of(params)
    v = tiled(batch["x"])
    keys = fold_in_indices(key, batch["index"])
    k = int(m.k)
    chains = carry.get("hidden_chains", carry.get("visible_chains")) if persistent else None
    loss, _, a_data, new_chains = rbm.cd_loss(model, v, keys, k, chains, m.persistent_state,
                                              units.free_energy, units.sample_visible)
    terms = {"free_energy_gap": loss}
    if m.monitors:
      terms["reconstruction_error"] = reconstruction_error(model, v, a_data)
      if m.visible == "bernoulli":
        # Draw 2k + 1 of chain 0's keys: one the chains do not use.
        terms["pseudo_log_likelihood"] = jnp.mean(rbm.pseudo_log_likelihood(
            model, v, jax.random.fold_in(keys[0], 2 * k + 1)))
    if not persistent:
      return loss, (terms, {})
    return loss, (terms, {f"{m.persistent_state}_chains": new_chains})

  def check_data(x):
    units.check_data(x)

  def split_data(split):
    """A whole split after the evaluation transforms (train: the binarization trained on),
    standardized for Gaussian units."""
    return (evaluation_split(dataset, split, transforms, config.seed, flatten=True)
            - pixel_mean) / pixel_std

  def reconstruction_error(params, v, preactivation=None):
    """Mean squared error of the mean-field reconstruction E[v | h = p(h | v)];
    `preactivation` = c + vᵀW when the caller has it already."""
    a = rbm.hidden_preactivation(params, v) if preactivation is None else preactivation
    return jnp.mean(jnp.sum(jnp.square(v - units.visible_mean(params, jax.nn.sigmoid(a))), -1))

  def evaluate(params, dataset_, key, final):
    test = jnp.asarray(split_data("test"))
    test_free_energy = np.asarray(units.free_energy(params, test))
    metrics = {"test_reconstruction_error": float(reconstruction_error(params, test)),
               "test_mean_free_energy": float(test_free_energy.mean())}
    if not final or replicated:  # a replicated module's own likelihood is not reported
      return metrics
    train_data = jnp.asarray(split_data("train"))
    train_free_energy = np.asarray(units.free_energy(params, train_data))
    exact_possible = min(n_visible, int(m.num_hidden)) <= EXACT_LOG_Z_MAX_UNITS
    if m.visible == "bernoulli":
      started = time.perf_counter()
      log_z, std_err = jax.jit(rbm.ais_log_partition, static_argnums=2)(
          params, key, int(config.eval.ais_chains), None, rbm.base_rate_bias(train_data))
      log_z = float(log_z)
      metrics.update({"ais_log_z": log_z, "ais_log_z_std_err": float(std_err),
                      "ais_chains": int(config.eval.ais_chains),
                      "ais_temperatures": int(rbm.standard_ais_betas().shape[0]),
                      "ais_seconds": time.perf_counter() - started})
      if exact_possible:
        metrics["exact_log_z"] = float(rbm.log_partition_exact(params))
        metrics["exact_test_log_likelihood"] = -float(test_free_energy.mean()) - metrics["exact_log_z"]
    else:
      if int(m.num_hidden) > EXACT_LOG_Z_MAX_UNITS:
        raise ValueError(f"a Gaussian–Bernoulli RBM is scored by exact log Z over its hidden units: "
                         f"at most {EXACT_LOG_Z_MAX_UNITS} (model.num_hidden={m.num_hidden})")
      log_z = float(rbm.gaussian_log_partition_exact(params))
      metrics["exact_log_z"] = log_z
      # Nats in the units of the data (before standardization): log p(x) = log p(v) - Σ log σ_i.
      raw_train = np.asarray(train_data) * pixel_std + pixel_mean
      raw_test = np.asarray(test) * pixel_std + pixel_mean
      metrics.update(gaussian_baselines(raw_train, raw_test))
    per_example = -test_free_energy - log_z - log_std_sum
    metrics.update({"test_log_likelihood": float(per_example.mean()),
                    "train_log_likelihood": float(-train_free_energy.mean() - log_z - log_std_sum),
                    "test_log_likelihood_sem": float(per_example.std() / math.sqrt(len(per_example)))})
    return metrics

  def write_figures(params, dataset_, prefix, key, final):
    filters = np.asarray(params["W"]).T[:NUM_FILTERS_SHOWN].reshape(-1, *image_shape)
    lo, hi = filters.min(axis=(1, 2, 3), keepdims=True), filters.max(axis=(1, 2, 3), keepdims=True)
    paths = [plots.save_image_grid((filters - lo) / (hi - lo + 1e-8), f"{prefix}_filters.png", 10)]
    start = jnp.asarray(split_data("test")[:SAMPLE_CHAINS])
    steps = int(config.eval.sample_gibbs_steps) if final else int(config.eval.sample_gibbs_steps) // 10
    v = rbm.gibbs_chain(params, start, jax.random.fold_in(key, 1), steps, units.gibbs_step)
    h = rbm.sample_hidden(params, v, jax.random.fold_in(key, 2))
    means = np.asarray(units.visible_mean(params, h)) * pixel_std + pixel_mean
    paths.append(plots.save_image_grid(np.clip(means, 0.0, 1.0).reshape(-1, *image_shape),
                                       f"{prefix}_samples.png", 8))
    return paths

  def sample(params, keys):
    """One image per key: eval.sample_gibbs_steps block Gibbs sweeps from v_0 ~ p(v | h_0),
    h_0 uniform; the last sweep's visible draw (Bernoulli) or E[v | h] (Gaussian), in the
    data's units."""
    steps = int(config.eval.sample_gibbs_steps)

    def one(key):
      h0 = jax.random.bernoulli(jax.random.fold_in(key, 0), 0.5, (1, int(m.num_hidden)))
      v = units.sample_visible(params, h0.astype(jnp.float32), jax.random.fold_in(key, 1))
      v = rbm.gibbs_chain(params, v, jax.random.fold_in(key, 2), steps, units.gibbs_step)
      if units.standardized:
        h = rbm.sample_hidden(params, v, jax.random.fold_in(key, 3))
        v = units.visible_mean(params, h) * pixel_std + pixel_mean
      return v[0].reshape(image_shape)

    return jax.vmap(one)(keys)

  density = None
  if not replicated and m.visible == "bernoulli":
    chains = int(config.eval.ais_chains)

    def prepare(params, key):
      log_z, _ = jax.jit(rbm.ais_log_partition, static_argnums=2)(
          params, key, chains, None, rbm.base_rate_bias(jnp.asarray(split_data("train"))))
      return {"params": params, "log_z": log_z}

    density = Density.for_images(
        lambda prepared, x, keys: -rbm.free_energy(prepared["params"], _flat(x)) - prepared["log_z"],
        f"−F(v) − log Ẑ, log Z by AIS ({chains} chains, {rbm.standard_ais_betas().shape[0]} "
        "temperatures, from the base-rate RBM of the training split)", "binary", False, prepare)
  elif not replicated and int(m.num_hidden) <= EXACT_LOG_Z_MAX_UNITS:
    density = Density.for_images(
        lambda prepared, x, keys: (-rbm.gaussian_free_energy(prepared["params"], (_flat(x) - pixel_mean) / pixel_std)
                                   - prepared["log_z"] - log_std_sum),
        "exact: −F(v) − log Z − Σ log σ_i (Z by enumerating the hidden units; a density of "
        "dequantized pixels in [0, 1])", "unit", True,
        lambda params, key: {"params": params, "log_z": rbm.gaussian_log_partition_exact(params)})

  return Task(name=f"rbm-{m.visible}-{m.method}{m.k}", init=init, loss_fn=loss_fn, check_data=check_data,
              sample=sample, density=density,
              write_figures=write_figures, evaluate=evaluate, init_carry=init_carry,
              per_example_carry=("hidden_chains", "visible_chains"))


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  dataset = load_dataset(config.data)
  return train(make_task(config, dataset), config, workdir, dataset, stop_after_step)
