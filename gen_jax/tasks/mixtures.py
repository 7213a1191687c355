"""Gaussian mixtures as a trainer task: EM (`model.kind = "em"`) or the seed's gradient route
(`"gradient"`), on 2-D points or on dequantized images.

EM as a step-level family: each step adds its global batch's sufficient statistics
(`mixtures.gmm.statistics`, summed by XLA across the devices and hosts the batch is sharded
over) to the carry; the step that completes a pass over the training split (N / batch_size
steps, every example once) takes the M-step, so one pass is one exact EM iteration whatever the
batch size or device count. Once the mean log-likelihood changes by less than `em.tol` the
steps leave the mixture as it is. The carry (checkpointed) also keeps each pass's mean
log-likelihood and snapshots of the mixture at `SNAPSHOT_ITERATIONS`, for the figures.

The gradient route trains `mixtures.gradient.nll_loss` with the trainer's optimizer, from the
same k-means++ start.

Images: model space is y = (k + u) / 256 for 8-bit pixel values k and u ~ U[0, 1)^D drawn once
per example (keyed by its id: the same dequantized copy on every pass, as EM needs); the test
`nll` is the dequantization bound −E_u log p((k + u) / 256) + D log 256 on log P(k), in nats and
bits/dim, on the flows' scale. 2-D: the exact test `nll` beside `data_nll`.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax.data import eval_batches, load_dataset
from gen_jax.data.transforms import check_points, to_unit_interval
from gen_jax.flows import dequantization as deq
from gen_jax.keys import fold_in_indices
from gen_jax.metrics.likelihood import mean_and_sem, nats_to_bpd
from gen_jax.mixtures import em, gmm as gmm_lib, gradient
from gen_jax.mixtures.gmm import GaussianMixture, Statistics
from gen_jax.training import Density, Task, plots, train

KINDS = ("em", "gradient")
SNAPSHOT_ITERATIONS = (0, 1, 2, 5, 10, 20, 50)   # EM iterations drawn in the iterations figure
FIGURE_POINTS = 2000
FIGURE_GRID = 200
PLOT_LIMIT = 1.1
ELLIPSE_STDS = (1.0, 2.0)
NUM_SAMPLES = 64          # image grids
COMPARISON_STEPS = 500    # full-batch gradient steps in the EM-against-gradient figure
# Iterations whose mean log-likelihood the carry keeps for the curve and eval.json (a fixed
# length: train.num_steps may change on resume, the carry's shape may not).
HISTORY_LENGTH = 1_000
DEQUANTIZE_STREAM = 0


def check_model_config(m, num_train: int, dim: int):
  if m.kind not in KINDS:
    raise ValueError(f"model.kind={m.kind!r} is not a mixture fit: use one of {list(KINDS)}")
  gmm_lib.covariance_type_of(m.covariance_type)
  if m.init not in em.INITIALIZERS:
    raise ValueError(f"model.init={m.init!r}: use one of {sorted(em.INITIALIZERS)}")
  if not 1 <= int(m.num_components) <= num_train:
    raise ValueError(f"model.num_components={m.num_components} must be between 1 and the "
                     f"training split's {num_train} points")
  if m.kind == "gradient" and m.covariance_type != "full":
    raise ValueError(f"model.kind='gradient' fits full covariances (a Cholesky-parameterised "
                     f"precision); set model.covariance_type='full' (got {m.covariance_type!r})")
  if float(m.reg_covar) < 0:
    raise ValueError(f"model.reg_covar={m.reg_covar} must be non-negative")


def _mixture(params, covariance_type) -> GaussianMixture:
  return GaussianMixture(params["weights"], params["means"], params["covariances"], covariance_type)


def _as_params(g: GaussianMixture) -> dict:
  return {"weights": g.weights, "means": g.means, "covariances": g.covariances}


def make_task(config, dataset) -> Task:
  m, ev = config.model, config.eval
  if tuple(config.data.transforms):
    raise ValueError(f"data.transforms={list(config.data.transforms)}: a mixture models raw "
                     "2-D coordinates or dequantizes 8-bit images itself; set data.transforms=()")
  is_image = dataset.kind == "image"
  event_shape = tuple(dataset.element_shape)
  dim = int(np.prod(event_shape))
  num_train = len(dataset.train)
  check_model_config(m, num_train, dim)
  covariance_type, reg_covar, num_components = m.covariance_type, float(m.reg_covar), int(m.num_components)
  batch_size = int(config.train.batch_size)
  if m.kind == "em" and num_train % batch_size:
    divisors = [d for d in range(1, num_train + 1) if num_train % d == 0 and d <= 4 * batch_size]
    raise ValueError(f"train.batch_size={batch_size} must divide the {num_train} training points, "
                     f"so that a pass is one EM iteration over each point once (e.g. {divisors[-1]})")
  steps_per_pass = num_train // batch_size
  root_key = jax.random.key(int(config.seed))
  dequantize_key = jax.random.fold_in(root_key, DEQUANTIZE_STREAM)

  def dequantize(x_unit, keys):
    """(k + u) / 256 flattened, for images in [0, 1] with 8-bit values k; row i's u from keys[i]."""
    bins = deq.to_bins(x_unit).reshape(x_unit.shape[0], -1)
    return (bins + deq.uniform_dequantizer(None, bins, keys)[0]) / deq.PIXEL_BINS

  def to_model(x, ids):
    """Model-space rows: 2-D points as they are; images dequantized with u keyed by example id
    (the same copy on every pass)."""
    if not is_image:
      return x
    return dequantize(to_unit_interval(x), fold_in_indices(dequantize_key, ids))

  # The split is read in batches (the trainer's pipeline, random access into the source), never
  # whole: the start uses `model.init_points` of it, the figures the first FIGURE_POINTS.
  num_init = min(int(m.init_points), num_train)
  init_ids = np.sort(np.random.default_rng(int(config.seed)).choice(num_train, num_init, replace=False))
  init_rows = dataset.train.gather(init_ids)["x"]
  if not is_image:
    check_points(init_rows, dataset.name)
  init_x = np.asarray(to_model(jnp.asarray(init_rows), jnp.asarray(init_ids, jnp.uint32)))
  em.check_data(init_x, num_components, covariance_type)

  def start_mixture(key) -> GaussianMixture:
    return em.initialize(jnp.asarray(init_x), num_components, key, covariance_type, reg_covar, m.init)

  def init(key, x):
    """The mixture of `model.init` on `model.init_points` training points (x gives nothing)."""
    start = start_mixture(key)
    return _as_params(start) if m.kind == "em" else gradient.to_unconstrained(start)

  def mixture_of(params) -> GaussianMixture:
    return _mixture(params, covariance_type) if m.kind == "em" else gradient.to_mixture(params)

  def init_carry(key, batch, params):
    g = mixture_of(params)
    zero_stats = jax.tree.map(jnp.zeros_like, jax.eval_shape(
        lambda: gmm_lib.statistics(g, jnp.zeros((1, dim), jnp.float32))))
    snapshot = jax.tree.map(lambda v: jnp.zeros((len(SNAPSHOT_ITERATIONS),) + v.shape, v.dtype), params)
    snapshot = jax.tree.map(lambda s, v: s.at[0].set(v), snapshot, params)
    return {"stats": zero_stats._asdict(), "pass_step": jnp.zeros((), jnp.int32),
            "iteration": jnp.zeros((), jnp.int32), "converged": jnp.zeros((), bool),
            "last_log_likelihood": jnp.zeros((), jnp.float32),
            "log_likelihoods": jnp.zeros((HISTORY_LENGTH,), jnp.float32), "snapshots": snapshot}

  def make_step(optimizers):
    del optimizers  # EM has no optimizer

    def step(state, batch, key):
      params, carry = state["params"], dict(state["carry"])
      g = mixture_of(params)
      x = to_model(batch["x"], batch["id"])
      total = jax.tree.map(jnp.add, Statistics(**carry["stats"]), gmm_lib.statistics(g, x))
      ends_pass = carry["pass_step"] == steps_per_pass - 1
      ll = total.log_likelihood / total.num_examples
      previous = jnp.where(carry["iteration"] > 0, carry["last_log_likelihood"], -jnp.inf)
      update = ends_pass & ~carry["converged"]
      new = _as_params(gmm_lib.m_step(total, g, reg_covar))
      params = jax.tree.map(lambda a, b: jnp.where(update, a, b), new, params)
      iteration = carry["iteration"] + update.astype(jnp.int32)
      carry["log_likelihoods"] = jnp.where(  # iterations past HISTORY_LENGTH are not kept
          update, carry["log_likelihoods"].at[carry["iteration"]].set(ll, mode="drop"), carry["log_likelihoods"])
      carry["last_log_likelihood"] = jnp.where(update, ll, carry["last_log_likelihood"])
      carry["converged"] = carry["converged"] | (update & (jnp.abs(ll - previous) < float(config.em.tol)))
      slots = jnp.asarray(SNAPSHOT_ITERATIONS)
      record = update & (slots == iteration)
      carry["snapshots"] = jax.tree.map(
          lambda s, v: jnp.where(record.reshape((-1,) + (1,) * v.ndim), v[None], s), carry["snapshots"], params)
      carry["stats"] = jax.tree.map(lambda v: jnp.where(ends_pass, jnp.zeros_like(v), v), total)._asdict()
      carry["pass_step"] = jnp.where(ends_pass, 0, carry["pass_step"] + 1)
      carry["iteration"] = iteration
      # the last completed iteration's, or before the first, the running mean so far
      last = jnp.where(iteration > 0, carry["last_log_likelihood"], ll)
      return ({"params": params, "opt_state": state["opt_state"], "carry": carry},
              {"log_likelihood": last, "em_iteration": iteration.astype(jnp.float32),
               "converged": carry["converged"].astype(jnp.float32)})

    return step

  def loss_fn(params, batch, key):
    return gradient.nll_loss(params, to_model(batch["x"], batch["id"]))

  @jax.jit
  def log_prob_batch(params, y):
    return gmm_lib.gmm_log_prob(mixture_of(params), y)

  def split_log_probs(params, source, limit=None, true_density=None):
    """Model-space log p of each row of a split, read in batches (float64), and the true
    density's log p of the same rows when `true_density` is given (else None)."""
    values, true_values = [], []
    for batch in eval_batches(source, int(ev.batch_size), limit):
      mask = batch.pop("mask")
      y = to_model(jnp.asarray(batch["x"]), jnp.asarray(batch["id"]))
      values.append(np.asarray(log_prob_batch(params, y), np.float64)[mask])
      if true_density is not None:
        true_values.append(np.asarray(true_density(jnp.asarray(batch["x"])))[mask])
    return np.concatenate(values), (np.concatenate(true_values) if true_values else None)

  def evaluate(params, dataset, key, final):
    log_p, true_log_p = split_log_probs(params, dataset.test, int(ev.num_examples) or None, dataset.log_prob)
    nll = -log_p + (dim * math.log(deq.PIXEL_BINS) if is_image else 0.0)
    metrics = {}
    metrics["nll"], metrics["nll_sem"] = mean_and_sem(nll)
    if true_log_p is not None:
      metrics["data_nll"], metrics["data_nll_sem"] = mean_and_sem(-true_log_p)
    if is_image:
      metrics["nll_bpd"] = float(nats_to_bpd(metrics["nll"], dim))
      metrics["nll_bpd_sem"] = float(nats_to_bpd(metrics["nll_sem"], dim))
    metrics["num_examples"] = int(len(nll))
    if final:
      metrics.update(training_split_criteria(params))
    return metrics

  def training_split_criteria(params) -> dict:
    """Mean log-likelihood of the training split (model space), BIC and AIC, in batches."""
    total = float(np.sum(split_log_probs(params, dataset.train)[0]))
    num_params = gmm_lib.num_parameters(covariance_type, num_components, dim)
    return {"train_mean_log_likelihood": total / num_train,
            **gmm_lib.information_criteria(total, num_train, num_params), "num_parameters": num_params,
            "rank_deficient_components": int(gmm_lib.empirical_rank_deficient(mixture_of(params), reg_covar).sum())}

  def sample(params, keys):
    g = mixture_of(params)
    y = gmm_lib.sample(g, keys)
    if not is_image:
      return y
    return deq.to_pixels(jnp.clip(y, 0.0, 1.0 - 1e-7)).reshape((-1,) + event_shape)

  figure_points = np.asarray(dataset.train.gather(np.arange(min(FIGURE_POINTS, num_train)))["x"])
  limit = PLOT_LIMIT * float(np.abs(figure_points).max()) if not is_image else 1.0

  def write_figures(params, dataset, prefix, key, final):
    samples = np.asarray(jax.jit(sample)(params, jax.random.split(key, FIGURE_POINTS if not is_image
                                                                   else NUM_SAMPLES)))
    if is_image:
      return [plots.save_image_grid(samples, f"{prefix}_samples.png")]
    return [ellipse_figure([(f"{m.kind} fit", mixture_of(params))], samples, f"{prefix}_mixture.png")]

  def ellipse_figure(panels, samples, path):
    """Each panel: the training points, the components' 1σ and 2σ ellipses (line width ∝ π_k)."""
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(panels) + (samples is not None), figsize=(3.2 * (len(panels) + 1), 3.4))
    axes = np.atleast_1d(axes)
    for ax, (title, g) in zip(axes, panels):
      ax.scatter(figure_points[:, 0], figure_points[:, 1], s=1, alpha=0.3, color="0.5")
      draw_ellipses(ax, g)
      ax.set_title(title, fontsize=9)
    if samples is not None:
      axes[-1].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.5)
      axes[-1].set_title(f"{len(samples)} samples", fontsize=9)
    for ax in axes:
      ax.set_xlim(-limit, limit)
      ax.set_ylim(-limit, limit)
      ax.set_aspect("equal")
      ax.set_xticks([])
      ax.set_yticks([])
    fig.suptitle(f"{num_components}-component {covariance_type} mixture on {dataset.name}", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

  def draw_ellipses(ax, g: GaussianMixture):
    from matplotlib.patches import Ellipse
    full = np.asarray(gmm_lib.as_full_covariances(g), np.float64)
    weights = np.asarray(g.weights)
    for k in range(num_components):
      values, vectors = np.linalg.eigh(full[k])
      angle = math.degrees(math.atan2(vectors[1, -1], vectors[0, -1]))
      for n_std in ELLIPSE_STDS:
        ax.add_patch(Ellipse(np.asarray(g.means[k]), 2 * n_std * math.sqrt(values[-1]),
                             2 * n_std * math.sqrt(values[0]), angle=angle, fill=False,
                             color=f"C{k % 10}", lw=0.5 + 3 * float(weights[k]) * num_components / 4))

  def report_carry(carry, dataset, prefix, key):
    """EM: the log-likelihood curve (and, on 2-D, the same data fitted by full-batch Adam from
    the same start beside it) and the mixture at several iterations."""
    if m.kind != "em":
      return {}
    iterations = int(carry["iteration"])
    lls = np.asarray(carry["log_likelihoods"])[:min(iterations, HISTORY_LENGTH)]
    metrics = {"em_log_likelihood": [float(v) for v in lls], "em_iterations": iterations,
               "em_converged": bool(carry["converged"])}
    if is_image:
      plots.save_loss_curves([{"step": i, "EM mean log-likelihood (train)": float(v)} for i, v in enumerate(lls)],
                             f"{prefix}_em_log_likelihood.png", "EM")
      return metrics
    drawn = [i for i in range(len(SNAPSHOT_ITERATIONS)) if SNAPSHOT_ITERATIONS[i] <= iterations]
    panels = [(f"iteration {SNAPSHOT_ITERATIONS[i]}", _mixture(jax.tree.map(lambda v: v[i], carry["snapshots"]),
                                                               covariance_type)) for i in drawn]
    ellipse_figure(panels, None, f"{prefix}_em_iterations.png")
    start = _mixture(jax.tree.map(lambda v: v[0], carry["snapshots"]), covariance_type)
    curve_figure(lls, start, f"{prefix}_em_vs_gradient.png")
    return metrics

  def curve_figure(em_lls, start, path):
    """Mean training log-likelihood per full pass: EM's iterations, and full-batch Adam
    (learning rate `optim.learning_rate`) on `gradient.nll_loss` from the same start when the
    covariances are full."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.plot(np.arange(len(em_lls)), em_lls, marker="o", ms=3, label="EM")
    if covariance_type == "full":
      # 2-D only: the whole (small) split in memory, the data EM's passes saw
      y = jnp.asarray(dataset.train.gather(np.arange(num_train))["x"], jnp.float32)
      tx = optax.adam(float(config.optim.learning_rate))
      params = gradient.to_unconstrained(start)

      def adam_step(carry, _):
        params, opt_state = carry
        (loss, _), grads = jax.value_and_grad(gradient.nll_loss, has_aux=True)(params, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), -loss

      _, grad_lls = jax.jit(lambda p: jax.lax.scan(adam_step, (p, tx.init(p)), None, COMPARISON_STEPS))(params)
      ax.plot(np.arange(COMPARISON_STEPS), np.asarray(grad_lls), label="gradient ascent (Adam, full batch)")
      ax.set_xscale("symlog", linthresh=10)
    ax.set_xlabel("iteration (one pass over the training points)")
    ax.set_ylabel("mean log-likelihood (nats)")
    ax.legend(fontsize=8)
    ax.set_title(f"EM against the seed's gradient route, {dataset.name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path

  def describe_nonfinite(carry) -> str:
    return (f"a covariance lost positive definiteness: raise model.reg_covar (now {reg_covar}) "
            "or lower model.num_components")

  density = Density(lambda params, x, keys: log_prob_batch(params, x), "exact (the mixture's density)") \
      if not is_image else Density.for_images(
          lambda params, x, keys: log_prob_batch(params, dequantize(x, keys)) - dim * math.log(deq.PIXEL_BINS),
          "the uniform-dequantization bound on log P(x) of the 8-bit image (one draw of u per row)",
          "unit", continuous=False)

  common = dict(evaluate=evaluate, write_figures=write_figures, sample=sample, density=density,
                describe_nonfinite=describe_nonfinite)
  name = f"mixture/{m.kind}-{covariance_type}-{num_components}"
  if m.kind == "em":
    return Task(name=name, init=init, make_step=make_step, init_carry=init_carry,
                report_carry=report_carry, **common)
  return Task(name=name, init=init, loss_fn=loss_fn, **common)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Fits the configured mixture in `workdir` (resuming if it holds a checkpoint), writes
  figures and eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  task = make_task(config, dataset)
  return train(task, config, workdir, dataset, stop_after_step)
