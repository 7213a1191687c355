"""Normalizing flows as a trainer task: maximum likelihood, exact test NLL, density figures.

Images (configs with `model.levels`): a multi-scale Glow over logit-preprocessed 8-bit images
with uniform or variational dequantization in the loss (`flows.dequantization`); evaluation
gives the test bound in nats and bits/dim (`nll`, `nll_bpd`); figures: sample grids at
several temperatures.

2-D densities (`model.kind`: planar | radial | nice | realnvp | spline | maf | iaf | glow):
the loss is `flows.density.nll_loss`; evaluation gives the test `nll` (nats, with `nll_sem`)
beside `data_nll`, the true density's NLL of the same points, and at the end
`density_integral`, the model's density summed over a grid (1 up to the mass outside it).
Figures: the model's density beside the true one and samples; at the end, the chain of
intermediate densities from z to x, layer by layer (the thesis's Figure 2.2).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.data import eval_batches, load_dataset
from gen_jax.flows import bijectors as bij
from gen_jax.flows import density as flow_density
from gen_jax.flows import dequantization as deq
from gen_jax.keys import fold_in_indices
from gen_jax.data.transforms import check_8bit, check_points, to_unit_interval
from gen_jax.metrics.likelihood import mean_and_sem, nats_to_bpd
from gen_jax.nets import flows as flow_nets
from gen_jax.training import Density, Task, plots, train

PLOT_LIMIT = 1.1      # 2-D panels span 1.1 × the data's largest |coordinate|
FIGURE_GRID = 200     # density heat maps: points per side
FIGURE_POINTS = 2000  # samples in the scatter panels
INTEGRAL_GRID = 400   # density_integral: points per side of the grid
INTEGRAL_LIMIT = 1.5  # ... over 1.5 × the data's largest |coordinate|
MAX_CHAIN_PANELS = 6  # intermediate densities shown from z to x


def _grid(limit: float, n: int):
  axis = np.linspace(-limit, limit, n, dtype=np.float32)
  xx, yy = np.meshgrid(axis, axis)
  return axis, np.stack([xx, yy], -1).reshape(-1, 2)


def check_model_config(m, dim: int):
  """Raises on a config that breaks a flow's constraints."""
  if int(m.num_layers) < 1:
    raise ValueError(f"model.num_layers={m.num_layers}: a flow needs at least 1 layer")
  if m.kind == "spline":
    if not 2 <= int(m.num_bins) < 1 / bij.SPLINE_MIN_BIN_WIDTH:
      raise ValueError(f"model.num_bins={m.num_bins}: a spline needs 2 to "
                       f"{int(1 / bij.SPLINE_MIN_BIN_WIDTH) - 1} bins")
    if not float(m.bound) > 0:
      raise ValueError(f"model.bound={m.bound}: the spline's interval [-B, B] needs B > 0")
  if m.kind in ("maf", "iaf") and min(m.hidden_sizes) < dim - 1:
    raise ValueError(f"model.hidden_sizes={tuple(m.hidden_sizes)}: a MADE over {dim} dimensions "
                     f"needs every hidden layer at least {dim - 1} wide, or some conditionals "
                     "lose their inputs")


def make_task(config, dataset) -> Task:
  """The points task (2-D densities) or the image task (Glow on dequantized 8-bit images)."""
  is_image_config = "levels" in config.model
  if (dataset.kind == "image") != is_image_config:
    wanted = "an image dataset (e.g. 'digits', 'mnist5k')" if is_image_config else \
        "a 2-D density (e.g. 'eight_gaussians')"
    raise ValueError(f"data {dataset.name!r} ({dataset.kind}) does not fit this flow config, which "
                     f"models {'images' if is_image_config else '2-D points'}: set data.name to {wanted}, "
                     "or use experiments/configs/flows_2d.py for points and flows_digits.py / "
                     "flows_mnist5k.py for images")
  return image_task(config, dataset) if is_image_config else points_task(config, dataset)


def points_task(config, dataset) -> Task:
  m, ev = config.model, config.eval
  if tuple(config.data.transforms):
    raise ValueError(f"data.transforms={list(config.data.transforms)} on 2-D points: flows model "
                     "the raw coordinates; set data.transforms=()")
  check_model_config(m, int(np.prod(dataset.element_shape)))
  check_points(dataset.train.gather(np.arange(len(dataset.train)))["x"], dataset.name)
  layers = flow_nets.vector_flow_layers(m.kind, int(m.num_layers), tuple(m.hidden_sizes),
                                        int(m.num_bins), float(m.bound))
  model = flow_nets.Flow(layers)
  event_shape = tuple(dataset.element_shape)
  num_init = min(int(m.init_examples), len(dataset.train))
  init_batch = np.asarray(dataset.train.gather(np.arange(num_init))["x"], np.float32)
  data = np.asarray(dataset.test.gather(np.arange(min(FIGURE_POINTS, len(dataset.test))))["x"])
  limit = PLOT_LIMIT * float(np.abs(data).max())

  def init(key, x):
    """Parameters with every ActNorm initialised on the first `model.init_examples` training
    points (Glow's data-dependent init; `x` only gives the shape)."""
    return model.init(key, jnp.asarray(init_batch, x.dtype))

  def loss_fn(params, batch, key):
    return flow_density.nll_loss(model.apply, params, batch["x"])

  @jax.jit
  def log_prob_batch(params, x):
    return flow_density.log_prob(model.apply, params, x)

  def sample_at(params, keys, temperature=1.0):
    z = flow_density.base_samples(keys, event_shape, temperature)
    return model.apply(params, z, method="generate")[0]

  def evaluate(params, dataset, key, final):
    values = {"nll": [], "data_nll": []}
    limit_examples = int(ev.num_examples) or None
    for batch in eval_batches(dataset.test, int(ev.batch_size), limit_examples):
      mask = batch.pop("mask")
      x = jnp.asarray(batch["x"])
      values["nll"].append(-np.asarray(log_prob_batch(params, x))[mask])
      if dataset.log_prob is not None:
        values["data_nll"].append(-np.asarray(dataset.log_prob(x))[mask])
    metrics = {}
    for name, parts in values.items():
      if parts:
        metrics[name], metrics[f"{name}_sem"] = mean_and_sem(np.concatenate(parts))
    metrics["num_examples"] = int(sum(len(p) for p in values["nll"]))
    if final:
      metrics["density_integral"] = density_integral(params)
    return metrics

  def density_integral(params) -> float:
    """Σ p(x) ΔA over a grid of INTEGRAL_GRID² points on [-L, L]², L = INTEGRAL_LIMIT ×
    the data's largest |coordinate|."""
    axis, grid = _grid(INTEGRAL_LIMIT * float(np.abs(data).max()), INTEGRAL_GRID)
    cell = float(axis[1] - axis[0]) ** 2
    log_p = np.concatenate([np.asarray(log_prob_batch(params, jnp.asarray(part)))
                            for part in np.array_split(grid, INTEGRAL_GRID)])
    return float(np.sum(np.exp(log_p.astype(np.float64))) * cell)

  def write_figures(params, dataset, prefix, key, final):
    keys = fold_in_indices(key, jnp.arange(FIGURE_POINTS))
    samples = np.asarray(jax.jit(sample_at)(params, keys))
    paths = [density_figure(params, samples, f"{prefix}_density.png")]
    if final:
      paths.append(chain_figure(params, key, f"{prefix}_chain.png"))
    return paths

  def density_figure(params, samples, path):
    axis, grid = _grid(limit, FIGURE_GRID)
    panels = []
    if dataset.log_prob is not None:
      panels.append(("true density", np.exp(np.asarray(dataset.log_prob(jnp.asarray(grid))))))
    panels.append((f"{m.kind} flow density", np.exp(np.asarray(log_prob_batch(params, jnp.asarray(grid))))))
    return plots.save_density_panels(panels, samples, limit, path, f"{m.kind} on {dataset.name}")

  def chain_figure(params, key, path):
    """The density of each intermediate variable h_k (h_0 = x, h_K = z), k from K down to 0:
    p(h_k) = N(f_{>k}(h_k); 0, I)·|det ∂f_{>k}/∂h_k|, on a grid around that stage's samples
    (two compiled programs: every stage's samples, then every stage's grid densities)."""
    num_layers = len(layers)
    stages = sorted({int(round(s)) for s in np.linspace(num_layers, 0, MAX_CHAIN_PANELS)}, reverse=True)
    keys = fold_in_indices(key, jnp.arange(FIGURE_POINTS))
    z = flow_density.base_samples(keys, event_shape)
    samples = np.asarray(jax.jit(lambda p, z: jnp.stack(
        [model.apply(p, z, s, method="generate")[0] for s in stages]))(params, z))
    limits = [PLOT_LIMIT * float(np.abs(h).max()) for h in samples]
    grids = np.stack([_grid(lim, FIGURE_GRID)[1] for lim in limits])
    log_p = jax.jit(lambda p, grids: jnp.stack(
        [flow_density.log_prob(lambda p_, x_, s=s: model.apply(p_, x_, s), p, g)
         for s, g in zip(stages, grids)]))(params, jnp.asarray(grids))
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, len(stages), figsize=(3 * len(stages), 3.2))
    for ax, stage, lim, lp in zip(np.atleast_1d(axes), stages, limits, np.asarray(log_p)):
      ax.imshow(np.exp(lp).reshape(FIGURE_GRID, FIGURE_GRID), origin="lower",
                extent=(-lim, lim, -lim, lim), cmap="viridis")
      done = num_layers - stage
      ax.set_title("z (base)" if stage == num_layers else ("x (data)" if stage == 0 else
                                                            f"after {done} layer{'s' * (done > 1)}"),
                   fontsize=9)
      ax.set_xticks([])
      ax.set_yticks([])
    fig.suptitle(f"{m.kind}: densities from z to x, layer by layer")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

  density = Density(lambda params, x, keys: log_prob_batch(params, x),
                    f"exact (change of variables through the {m.kind} flow)")
  # The whole training split was checked above, so the trainer's first-batch check is not needed.
  return Task(name=f"flow/{m.kind}", init=init, loss_fn=loss_fn, evaluate=evaluate,
              write_figures=write_figures, density=density, sample=sample_at,
              sample_at_temperature=sample_at)


# Image flows.
TEMPERATURES = (0.5, 0.7, 0.85, 1.0)  # rows of the temperature figure (Glow's reduced temperature)
SAMPLES_PER_TEMPERATURE = 10
DEQUANTIZATIONS = ("uniform", "variational")
IMAGE_STREAM = 0  # sub-stream of the loss key for the dequantization noise


def check_image_config(m, image_shape, data_name: str):
  """Raises on an image flow the data or the config cannot support."""
  h, w, _ = image_shape
  levels = int(m.levels)
  if levels < 1 or int(m.steps) < 1:
    raise ValueError(f"model.levels={m.levels}, model.steps={m.steps}: a Glow needs at least one "
                     "level of at least one step")
  if h % 2 ** levels or w % 2 ** levels:
    fits = 0
    while h % 2 ** (fits + 1) == 0 and w % 2 ** (fits + 1) == 0:
      fits += 1
    raise ValueError(f"data {data_name!r} has {h}x{w} images, which model.levels={levels} squeezes "
                     f"cannot divide (each halves height and width): use model.levels <= {fits}"
                     + ("" if fits else ", or resize the images to an even size (data.image_size)"))
  if m.dequantization not in DEQUANTIZATIONS:
    raise ValueError(f"unknown model.dequantization {m.dequantization!r}; choose one of "
                     f"{list(DEQUANTIZATIONS)}")


def check_pixels(x):
  check_8bit(x, "image flows dequantize them in the loss: set data.transforms=() (no binarization "
                "or dequantization)")


def image_task(config, dataset) -> Task:
  m, ev = config.model, config.eval
  if tuple(config.data.transforms):
    raise ValueError(f"data.transforms={list(config.data.transforms)}: image flows dequantize the "
                     "8-bit images in their loss (model.dequantization); set data.transforms=()")
  image_shape = tuple(dataset.element_shape)
  check_image_config(m, image_shape, dataset.name)
  model = flow_nets.ImageFlow(image_shape, int(m.levels), int(m.steps), int(m.hidden_channels),
                              bool(m.lu), m.dequantization)
  num_dims = int(np.prod(image_shape))
  flow_fn = lambda params, y: model.apply(params, y)
  dequantize_fn = deq.uniform_dequantizer if m.dequantization == "uniform" else \
      deq.variational_dequantizer(lambda params, bins, eps: model.apply(params, bins, eps, method="noise"))
  num_init = min(int(m.init_examples), len(dataset.train))
  init_images = np.asarray(to_unit_interval(dataset.train.gather(np.arange(num_init))["x"]))
  init_bins = np.asarray(deq.to_bins(init_images))
  init_noise = np.random.default_rng(int(config.seed)).uniform(size=init_bins.shape)
  init_y = np.asarray(deq.logit_preprocess(jnp.asarray((init_bins + init_noise) / deq.PIXEL_BINS,
                                                       jnp.float32))[0])

  def init(key, x):
    """Parameters with every ActNorm initialised on `model.init_examples` dequantized training
    images (Glow's data-dependent init; `x` only gives the shape)."""
    return model.init(key, jnp.asarray(init_y, x.dtype), jnp.asarray(init_bins, x.dtype),
                      method="initialize")

  def loss_fn(params, batch, key):
    keys = fold_in_indices(jax.random.fold_in(key, IMAGE_STREAM), batch["index"])
    return deq.dequantized_nll_loss(flow_fn, dequantize_fn, params, batch["x"], keys)

  @jax.jit
  def nll_batch(params, x, keys):
    return deq.dequantized_nll_terms(flow_fn, dequantize_fn, params, x, keys)["nll"]

  def sample_at(params, keys, temperature=1.0):
    z = flow_density.base_samples(keys, (num_dims,), temperature)
    y = model.apply(params, z, method="generate")[0]
    return deq.to_pixels(deq.logit_postprocess(y))

  def evaluate(params, dataset, key, final):
    """The dequantization bound on the test images, one draw of u per image (fixed by its id)."""
    values = []
    for batch in eval_batches(dataset.test, int(ev.batch_size), int(ev.num_examples) or None):
      mask = batch.pop("mask")
      x = to_unit_interval(jnp.asarray(batch["x"]))
      values.append(np.asarray(nll_batch(params, x, fold_in_indices(key, batch["id"])))[mask])
    v = np.concatenate(values)
    mean, sem = mean_and_sem(v)
    return {"nll": mean, "nll_sem": sem, "nll_bpd": float(nats_to_bpd(mean, num_dims)),
            "nll_bpd_sem": float(nats_to_bpd(sem, num_dims)), "num_examples": int(len(v))}

  def write_figures(params, dataset, prefix, key, final):
    """One row of samples per temperature T (z ~ N(0, T² I)), the same z·T in every row."""
    keys = fold_in_indices(key, jnp.arange(SAMPLES_PER_TEMPERATURE))
    draw = jax.jit(sample_at)  # the temperature traced: one program for every row
    rows = [np.asarray(draw(params, keys, jnp.float32(t))) for t in TEMPERATURES]
    path = plots.save_image_grid(np.concatenate(rows), f"{prefix}_samples_by_temperature.png",
                                 SAMPLES_PER_TEMPERATURE)
    return [path]

  density = Density.for_images(
      lambda params, x, keys: -nll_batch(params, x, keys),
      f"the {m.dequantization}-dequantization bound on log P(x) of the 8-bit image (one draw of "
      "the dequantization noise per row)", "unit", continuous=False)
  return Task(name=f"flow/glow-{m.dequantization}", init=init, loss_fn=loss_fn, check_data=check_pixels,
              evaluate=evaluate, write_figures=write_figures, density=density,
              sample=sample_at, sample_at_temperature=sample_at)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Trains the configured flow in `workdir` (resuming if it holds a checkpoint), writes
  figures and eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  task = make_task(config, dataset)
  return train(task, config, workdir, dataset, stop_after_step)
