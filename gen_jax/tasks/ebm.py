"""Energy-based models as a trainer task (a step-level family: the negatives are drawn inside
the step, with the current parameters, before the gradient).

The model is p(x) = exp(-E(x)) / Z on a box B: [-L, L]² for 2-D points (L = model.box_margin ×
the training data's largest |coordinate|), [0, 1]^D for images (dequantized pixels). Chains
are clipped to B, and log Z is over B, so every reported density is normalised.

`train.negatives` picks the learning rule (`NEGATIVES`):
- replay: persistent chains in a replay buffer (`ebm.replay`; carry, checkpointed, sharded
  along the data axis), restarted from noise with probability `sampler.reinit_fraction`;
- short_run: `sampler.num_steps` non-persistent steps from U(B) (Nijkamp et al. 2019);
- cd: CD-k, `sampler.num_steps` steps from the data (the seeds' appendix);
- dsm, ssm: denoising / sliced score matching (no sampling).
The first three train `ebm.losses.contrastive_divergence_loss` with `loss.regularization`;
`sampler.name` (langevin | mala) moves the chains.

Evaluation: 2-D, log Z by quadrature on a grid, hence the exact test `nll` beside `data_nll`;
images, log Z by AIS from U(B) (`ais_log_z`, `ais_log_z_std_err`) and the test NLL and bits/dim
from it, and at the end FID/KID/precision/recall of fresh chains and of the replay buffer in
the dataset classifier's features. A chain whose energy or position turns non-finite stops the
run with the example and Langevin step named; the last good checkpoint is kept.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gen_jax.data import eval_batches, load_dataset
from gen_jax.data.transforms import TRANSFORMS, check_points, to_unit_interval
from gen_jax.ebm import losses, partition, replay, samplers
from gen_jax.keys import INIT_STREAM, fold_in, fold_in_indices, stream_key
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import protocol
from gen_jax.metrics.likelihood import continuous_nll_to_bpd, mean_and_sem, nats_to_bpd
from gen_jax.nets import ConvEnergy, MLPEnergy
from gen_jax.training import Density, Task, group_update, plots, train

CHAIN_STREAM, START_STREAM, LOSS_STREAM = 0, 1, 2  # sub-streams of an example's key
NUM_SAMPLES = 64          # image grids
FIGURE_GRID = 200         # 2-D energy maps: points per side
FIGURE_POINTS = 2000      # 2-D samples
TRAJECTORIES = 12         # chains drawn in the trajectory figures
TRAJECTORY_FRAMES = 10    # positions recorded per chain
NO_FAULT = -1
# Test images dequantized as in training: (255 x + u) / 256, u ~ U[0, 1) per pixel.
DEQUANTIZE = TRANSFORMS["uniform_dequantize"].fn


@dataclasses.dataclass(frozen=True)
class Negatives:
  """One way to train: `sampled` rules draw negatives by MCMC from `start`, (batch x, row keys,
  box) -> starts; `persistent` ones keep a replay buffer in the carry; the others
  (`score_loss`) train a score-matching loss (apply, params, x, row keys, config) -> (loss, terms)."""
  sampled: bool
  persistent: bool = False
  start: Optional[Callable] = None
  score_loss: Optional[Callable] = None


def dsm_loss(apply, params, x, row_keys, c):
  noise = losses.gaussian_noise(fold_in(row_keys, LOSS_STREAM), x.shape[1:], x.dtype)
  return losses.denoising_score_matching_loss(apply, params, x, noise, float(c.loss.dsm_sigma))


def ssm_loss(apply, params, x, row_keys, c):
  v = losses.rademacher_projections(fold_in(row_keys, LOSS_STREAM), int(c.loss.ssm_projections),
                                    x.shape[1:], x.dtype)
  return losses.sliced_score_matching_loss(apply, params, x, v)


NEGATIVES = {
    "replay": Negatives(sampled=True, persistent=True),
    "short_run": Negatives(sampled=True, start=lambda x, keys, box: samplers.uniform_init(
        fold_in(keys, START_STREAM), x.shape[0], x.shape[1:], *box, x.dtype)),
    "cd": Negatives(sampled=True, start=lambda x, keys, box: x),
    "dsm": Negatives(sampled=False, score_loss=dsm_loss),
    "ssm": Negatives(sampled=False, score_loss=ssm_loss),
}


def negatives_rule(name: str) -> Negatives:
  if name not in NEGATIVES:
    raise ValueError(f"unknown train.negatives {name!r}; choose one of {sorted(NEGATIVES)}")
  return NEGATIVES[name]


def build_energy(m, is_image: bool):
  if m.kind == "mlp":
    return MLPEnergy(tuple(m.hidden_sizes))
  if m.kind == "conv":
    if not is_image:
      raise ValueError("model.kind='conv' is an image energy: use model.kind='mlp' for 2-D points")
    return ConvEnergy(tuple(m.channels))
  raise ValueError(f"unknown model.kind {m.kind!r}; choose one of ['conv', 'mlp']")


def noise_scale(s):
  """config sampler.noise_scale: 0 means √(2η) (ULA); > 0 sets the seeds' σ apart."""
  value = float(s.noise_scale)
  return None if value == 0 else value


def check_config(config, batch_size: int):
  s = config.sampler
  samplers.get_sampler(s.name)
  samplers.check_step_size(float(s.step_size))
  rule = negatives_rule(config.train.negatives)
  if rule.sampled and int(s.num_steps) < 1:
    raise ValueError(f"sampler.num_steps={s.num_steps}: {config.train.negatives} needs ≥ 1 MCMC step")
  if rule.persistent:
    replay.slots_per_row(int(config.train.buffer_size), batch_size)
    if not 0.0 <= float(s.reinit_fraction) <= 1.0:
      raise ValueError(f"sampler.reinit_fraction={s.reinit_fraction} must be in [0, 1]")
  if config.train.negatives == "dsm" and not float(config.loss.dsm_sigma) > 0:
    raise ValueError(f"loss.dsm_sigma={config.loss.dsm_sigma} must be > 0")
  if config.train.negatives == "ssm" and int(config.loss.ssm_projections) < 1:
    raise ValueError(f"loss.ssm_projections={config.loss.ssm_projections} must be ≥ 1")


def make_task(config, dataset) -> Task:
  m, s, ev = config.model, config.sampler, config.eval
  is_image = dataset.kind == "image"
  transforms = tuple(config.data.transforms)
  if is_image and transforms != ("uniform_dequantize",):
    raise ValueError(f"data.transforms={list(transforms)}: an image EBM is a density on [0, 1]^D "
                     "over dequantized pixels; set data.transforms=('uniform_dequantize',)")
  if not is_image and transforms:
    raise ValueError(f"data.transforms={list(transforms)} on 2-D points: set data.transforms=()")
  batch_size = int(config.train.batch_size)
  check_config(config, batch_size)
  rule = negatives_rule(config.train.negatives)
  event_shape = tuple(dataset.element_shape)
  num_dims = math.prod(event_shape)
  energy = build_energy(m, is_image)
  apply = energy.apply
  sampler = samplers.get_sampler(s.name)
  if is_image:
    box = (0.0, 1.0)
  else:
    train_points = np.asarray(dataset.train.gather(np.arange(len(dataset.train)))["x"])
    check_points(train_points, dataset.name)
    half = float(m.box_margin) * float(np.abs(train_points).max())
    box = (-half, half)
  sample_steps = int(ev.sample_steps)

  def chains(params, x0, keys, num_steps, record_every=0):
    return sampler.run(lambda z: apply(params, z), x0, keys, num_steps, float(s.step_size),
                       noise_scale=noise_scale(s), bounds=box, record_every=record_every,
                       **({} if sampler.adjusted else {"grad_clip": float(s.grad_clip) or None}))

  def init(key, x):
    return energy.init(key, x)

  def init_carry(key, batch, params):
    carry = {"fault": jnp.full((2,), NO_FAULT, jnp.int32)}
    if rule.persistent:
      slots = replay.slots_per_row(int(config.train.buffer_size), batch["x"].shape[0])
      row_keys = fold_in_indices(jax.random.fold_in(key, START_STREAM), jnp.arange(batch["x"].shape[0]))
      carry["buffer"] = replay.init_buffer(row_keys, slots, event_shape, *box, batch["x"].dtype)
    return carry

  def make_step(optimizers):
    (tx,) = optimizers.values()

    def step(state, batch, key):
      params, carry = state["params"], dict(state["carry"])
      x = batch["x"]
      row_keys = fold_in_indices(key, batch["index"])
      extra = {}
      if rule.sampled:
        if rule.persistent:
          starts, slots = replay.draw_starts(carry["buffer"], fold_in(row_keys, START_STREAM),
                                             float(s.reinit_fraction), *box)
        else:
          starts = rule.start(x, row_keys, box)
        result = chains(params, starts, fold_in(row_keys, CHAIN_STREAM), int(s.num_steps))
        x_model = result.x
        if rule.persistent:
          carry["buffer"] = replay.write_back(carry["buffer"], slots, x_model)
        bad = result.first_nonfinite != samplers.NO_STEP
        first = jnp.argmax(bad)
        record = jnp.stack([batch["index"][first], result.first_nonfinite[first]]).astype(jnp.int32)
        carry["fault"] = jnp.where((carry["fault"][0] == NO_FAULT) & jnp.any(bad), record, carry["fault"])
        loss_fn = lambda p: losses.contrastive_divergence_loss(apply, p, x, x_model,
                                                               float(config.loss.regularization))
        if sampler.adjusted:
          extra["acceptance_rate"] = jnp.mean(result.acceptance_rate)
      else:
        loss_fn = lambda p: rule.score_loss(apply, p, x, row_keys, config)
      (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      params, opt_state = group_update(tx, params, state["opt_state"], grads)
      return ({"params": params, "opt_state": opt_state, "carry": carry},
              {**terms, **extra, "loss": loss, "grad_norm": optax.tree.norm(grads)})

    return step

  def describe_fault(carry) -> str:
    example, langevin_step = (int(v) for v in np.asarray(carry["fault"]))
    if example == NO_FAULT:
      return ""
    return (f"the sampler's chain for example {example} (global stream position) turned "
            f"non-finite at MCMC step {langevin_step} of {s.num_steps}: lower sampler.step_size "
            f"(now {float(s.step_size):g}), or raise loss.regularization (now "
            f"{float(config.loss.regularization):g})")

  def sample(params, keys):
    x0 = samplers.uniform_init(fold_in(keys, START_STREAM), keys.shape[0], event_shape, *box)
    return chains(params, x0, fold_in(keys, CHAIN_STREAM), sample_steps).x

  def trajectories(params, key):
    """(frames, chains, ...): TRAJECTORIES chains from U(B), every sample_steps / frames steps."""
    keys = fold_in_indices(jax.random.fold_in(key, 1), jnp.arange(TRAJECTORIES))
    x0 = samplers.uniform_init(keys, TRAJECTORIES, event_shape, *box)
    every = max(1, sample_steps // TRAJECTORY_FRAMES)
    return np.asarray(chains(params, x0, fold_in(keys, CHAIN_STREAM), sample_steps, every).trajectory)

  # ------------------------------------------------------------------ 2-D points

  @jax.jit
  def energies(params, x):
    return apply(params, x)

  def log_partition(params):
    return float(partition.grid_log_partition(lambda z: energies(params, z), *box,
                                              int(ev.grid_size), chunks=int(ev.grid_size) // 50 or 1))

  def evaluate_points(params, dataset_, key, final):
    """One pass over the test points: the model's energies, whether each lies in the box, and the
    true density's NLL."""
    log_z = log_partition(params)
    values = {"energy": [], "inside": [], "data_nll": []}
    for batch in eval_batches(dataset.test, int(ev.batch_size), int(ev.num_examples) or None):
      mask = batch.pop("mask")
      x = jnp.asarray(batch["x"])
      values["energy"].append(np.asarray(energies(params, x))[mask])
      values["inside"].append(np.all((np.asarray(x) >= box[0]) & (np.asarray(x) <= box[1]), axis=1)[mask])
      if dataset.log_prob is not None:
        values["data_nll"].append(-np.asarray(dataset.log_prob(x))[mask])
    inside = np.concatenate(values["inside"])
    nll = np.where(inside, np.concatenate(values["energy"]) + log_z, np.inf)
    metrics = {"log_z": log_z, "num_examples": int(len(nll)), "box_half_width": box[1],
               "test_outside_box": int((~inside).sum())}
    metrics["nll"], metrics["nll_sem"] = mean_and_sem(nll)
    if values["data_nll"]:
      metrics["data_nll"], metrics["data_nll_sem"] = mean_and_sem(np.concatenate(values["data_nll"]))
    return metrics

  def initial_params():
    """The run's own initial parameters (the trainer's init key), for the 'before' panels."""
    return init(stream_key(int(config.seed), INIT_STREAM), jnp.zeros((1,) + event_shape))

  def write_points_figures(params, dataset_, prefix, key, final):
    keys = fold_in_indices(key, jnp.arange(FIGURE_POINTS))
    points = np.asarray(jax.jit(sample)(params, keys))
    axis, grid, _ = partition.grid_points(*box, FIGURE_GRID)
    limit = box[1]
    test_points = np.asarray(dataset.test.gather(np.arange(min(FIGURE_POINTS, len(dataset.test))))["x"])
    panels = []
    if dataset.log_prob is not None:
      panels.append(("true density", np.exp(np.asarray(dataset.log_prob(jnp.asarray(grid))))))
    log_z = log_partition(params)
    panels.append((f"model exp(-E)/Z ({config.train.negatives})",
                   np.exp(-np.asarray(energies(params, jnp.asarray(grid))) - log_z)))
    paths = [plots.save_density_panels(panels, points, limit, f"{prefix}_density.png",
                                       f"EBM ({config.train.negatives}, {s.name}) on {dataset.name}")]
    if final:
      paths.append(landscape_figure(params, grid, test_points, f"{prefix}_energy_landscape.png"))
      paths.append(trajectory_figure(params, trajectories(params, key), grid, f"{prefix}_trajectories.png"))
    return paths

  def landscape_figure(params, grid, data, path):
    """The thesis's Figure 2.5: the energy over the data, at initialisation and after training."""
    plt = plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 4))
    stages = (("E(x) at initialisation", initial_params()), ("E(x) after training", params))
    for ax, (title, p) in zip(axes, stages):
      e = np.asarray(energies(p, jnp.asarray(grid))).reshape(FIGURE_GRID, FIGURE_GRID)
      image = ax.imshow(e, origin="lower", extent=(*box, *box), cmap="magma_r")
      ax.scatter(data[:500, 0], data[:500, 1], s=1, c="cyan", alpha=0.5)
      ax.set_title(title, fontsize=9)
      fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle(f"energy landscape over {dataset.name} (points: test data)")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

  def trajectory_figure(params, path_xy, grid, path):
    """Chains from U(B) (`trajectories`) drawn over the trained energy."""
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    e = np.asarray(energies(params, jnp.asarray(grid))).reshape(FIGURE_GRID, FIGURE_GRID)
    ax.imshow(e, origin="lower", extent=(*box, *box), cmap="magma_r")
    for n in range(TRAJECTORIES):
      ax.plot(path_xy[:, n, 0], path_xy[:, n, 1], "-o", ms=2, lw=0.8)
    ax.set_title(f"{TRAJECTORIES} {s.name} chains from noise, {sample_steps} steps", fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

  # ------------------------------------------------------------------ images

  def image_log_partition(params, key):
    betas = partition.linear_betas(int(ev.ais_temperatures))
    return jax.jit(lambda p, k: partition.ais_log_partition(
        lambda z: apply(p, z), event_shape, k, int(ev.ais_chains), betas, float(ev.ais_step_size),
        *box))(params, key)

  def evaluate_images(params, dataset_, key, final):
    metrics = {}
    if final or int(ev.ais_chains_during_training):
      log_z, std_err, acceptance = (float(v) for v in image_log_partition(params, key))
      e = []
      for batch in eval_batches(dataset.test, int(ev.batch_size), int(ev.num_examples) or None):
        mask = batch.pop("mask")
        x = to_unit_interval(jnp.asarray(batch["x"]))
        dequantized = jax.vmap(DEQUANTIZE)(fold_in_indices(key, batch["id"]), x)
        e.append(np.asarray(energies(params, dequantized))[mask])
      nll = np.concatenate(e) + log_z
      mean, sem = mean_and_sem(nll)
      metrics.update({"ais_log_z": log_z, "ais_log_z_std_err": std_err, "ais_acceptance": acceptance,
                      "ais_chains": int(ev.ais_chains), "ais_temperatures": int(ev.ais_temperatures),
                      "nll": mean, "nll_sem": sem, "num_examples": int(len(nll)),
                      "nll_bpd": float(continuous_nll_to_bpd(mean, num_dims)),
                      "nll_bpd_sem": float(nats_to_bpd(sem, num_dims))})
    if final and int(ev.num_samples):
      net = feature_lib.feature_net(feature_lib.default_feature_net(dataset.name))
      common = dict(dataset=dataset, transforms=(), net=net, to_display=lambda v: v,
                    data_seed=int(config.seed), data_dir=config.data.data_dir)
      fresh = protocol.sample_quality(jax.jit(lambda k: sample(params, k)), key=jax.random.fold_in(key, 2),
                                      num_samples=int(ev.num_samples), batch_size=int(ev.sample_batch_size),
                                      **common)
      metrics.update({f"fresh/{k}": v for k, v in fresh.items() if isinstance(v, (int, float))})
    return metrics

  def write_image_figures(params, dataset_, prefix, key, final):
    keys = fold_in_indices(key, jnp.arange(NUM_SAMPLES))
    paths = [plots.save_image_grid(np.asarray(jax.jit(sample)(params, keys)),
                                   f"{prefix}_fresh_chains.png", 8)]
    if final:
      path = trajectories(params, key)
      frames = np.swapaxes(path, 0, 1).reshape(-1, *event_shape)  # a row per chain
      paths.append(plots.save_image_grid(frames, f"{prefix}_trajectories.png", path.shape[0]))
    return paths

  def report_buffer(carry, dataset_, prefix, key):
    """The replay buffer at the end: a grid (images) or scatter (points) of its chains, and for
    images the FID/KID/precision/recall of up to eval.num_samples of them."""
    if "buffer" not in carry:
      return {}
    chains_ = np.asarray(carry["buffer"]).reshape(-1, *event_shape)
    order = np.random.default_rng(int(config.seed)).permutation(len(chains_))
    if not is_image:
      plots.save_scatter(chains_[order[:FIGURE_POINTS]], f"{prefix}_replay_buffer.png",
                         title=f"{FIGURE_POINTS} of the {len(chains_)} replay-buffer chains",
                         limits=box)
      return {}
    plots.save_image_grid(chains_[order[:NUM_SAMPLES]], f"{prefix}_replay_buffer.png", 8)
    num = min(int(ev.num_samples), len(chains_))
    if not num:
      return {}
    net = feature_lib.feature_net(feature_lib.default_feature_net(dataset.name))
    quality = protocol.image_quality(chains_[order[:num]], dataset, (), net, key, lambda v: v,
                                     data_seed=int(config.seed), data_dir=config.data.data_dir)
    return {f"buffer/{k}": v for k, v in quality.items() if isinstance(v, (int, float))}

  def check_data(x):
    if is_image and (np.min(x) < 0 or np.max(x) > 1):
      raise ValueError(f"image EBMs take pixels in [0, 1]; got [{np.min(x):.3g}, {np.max(x):.3g}]")

  if is_image:
    density = Density.for_images(
        lambda prepared, x, keys: -energies(prepared[0], x) - prepared[1],
        f"-E(x) - log Ẑ with log Ẑ by AIS ({int(ev.ais_chains)} chains, {int(ev.ais_temperatures)} "
        "temperatures; an AIS log Ẑ is low in expectation, so these are optimistic)", "unit",
        continuous=True, prepare=lambda params, key: (params, image_log_partition(params, key)[0]))
  else:
    density = Density(lambda prepared, x, keys: -energies(prepared[0], x) - prepared[1],
                      f"exact up to quadrature: -E(x) - log Z, log Z on a {int(ev.grid_size)}² grid "
                      f"over the box [{box[0]:.3g}, {box[1]:.3g}]²",
                      prepare=lambda params, key: (params, log_partition(params)))
  return Task(name=f"ebm/{config.train.negatives}", init=init, make_step=make_step,
              init_carry=init_carry, per_example_carry=("buffer",) if rule.persistent else (),
              describe_nonfinite=describe_fault, report_carry=report_buffer, check_data=check_data,
              evaluate=evaluate_images if is_image else evaluate_points,
              write_figures=write_image_figures if is_image else write_points_figures,
              sample=sample, density=density)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Trains the configured EBM in `workdir` (resuming if it holds a checkpoint), writes figures
  and eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  return train(make_task(config, dataset), config, workdir, dataset, stop_after_step)
