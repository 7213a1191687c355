"""GANs as a step-level trainer task: two parameter groups ("generator", "discriminator") with
their own optimizers (`optim.generator`, `optim.discriminator`: two-time-scale learning
rates), `gan.critic_steps` discriminator updates per generator update (the global batch split
into that many chunks, one per critic update), an EMA of both players (samples come from the
generator's EMA).

The players' costs are `gan.losses` (`gan.loss`: minimax, non_saturating, wasserstein, hinge,
least_squares) with the options `gan.gradient_penalty` (WGAN-GP's λ), `gan.r1` (R1's γ, as
γ/2 · mean ‖∇D(x)‖²), `gan.clip` (the original WGAN's weight clipping) and
`model.spectral_norm`; `gan.pack` > 1 is PacGAN: the discriminator judges packs of m examples
(concatenated features). Non-trainable state (the generator's BatchNorm statistics, the
discriminator's power-iteration vectors) lives in the players' variables beside "params", gets
zero gradients and is overwritten by its new value after each update, so it is checkpointed and
resumed with the parameters.

2-D points (`model.kind` mlp): evaluation on ring_of_gaussians / grid_of_gaussians gives PacGAN's
`modes_captured`, `high_quality_fraction` and `reverse_kl`; figures: the discriminator's decision
surface with the real and generated points (the thesis's Figure 2.15) at every sample_every
steps, joined into a strip at the end. Images (`model.kind` dcgan; `model.num_classes` > 0:
class-conditional, a projection discriminator and a label embedding concatenated to z):
FID/KID/precision/recall in the dataset classifier's features; figures: sample grids (a row per
class) and latent interpolations. A GAN has no density: `experiments.log_prob` refuses.
"""

from __future__ import annotations

import glob
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import gan as gan_math
from gen_jax.data import load_dataset
from gen_jax.data.densities import MODE_MIXTURES
from gen_jax.data.transforms import check_points
from gen_jax.keys import fold_in, fold_in_indices
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import protocol
from gen_jax.metrics.modes import mode_coverage
from gen_jax.nets.gan import (SPECTRAL, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator,
                              MLPGenerator)
from gen_jax.training import Task, group_update, plots, train

GROUPS = ("generator", "discriminator")
CRITIC_STREAM, GENERATOR_STREAM, PENALTY_STREAM = 0, 1, 2  # sub-streams of the loss key
LABEL_STREAM = 3
MODE_SAMPLES = 2_500      # samples scored for mode coverage (PacGAN's count)
FIGURE_GRID = 150         # decision-surface panels: points per side
FIGURE_POINTS = 1_000     # generated points drawn in the panels
PLOT_MARGIN = 1.2         # panels span 1.2 × the data's largest |coordinate|
SAMPLES_PER_CLASS = 8
INTERPOLATION_ROWS, INTERPOLATION_STEPS = 6, 10
NUM_SAMPLES = 64
KINDS = ("mlp", "dcgan")


def pack(x, m: int):
  """PacGAN: (n, ..., C) -> (n / m, ..., m·C), example i of pack p at rows p·m + i."""
  if m == 1:
    return x
  y = x.reshape((x.shape[0] // m, m) + x.shape[1:])
  y = jnp.moveaxis(y, 1, -2)
  return y.reshape(y.shape[:-2] + (m * x.shape[-1],))


def split_state(variables):
  """(params, the rest: batch statistics, power-iteration vectors)."""
  return variables["params"], {k: v for k, v in variables.items() if k != "params"}


def check_config(config, dataset):
  g, m = config.gan, config.model
  gan_math.losses.gan_loss(g.loss)
  if m.kind not in KINDS:
    raise ValueError(f"unknown model.kind {m.kind!r}; choose one of {list(KINDS)}")
  if (m.kind == "dcgan") != (dataset.kind == "image"):
    raise ValueError(f"model.kind={m.kind!r} does not fit data {dataset.name!r} ({dataset.kind}s): use "
                     "'mlp' for 2-D points (gan_2d.py) and 'dcgan' for images (gan_digits.py, "
                     "gan_mnist5k.py)")
  critic_steps, packing = int(g.critic_steps), int(g.pack)
  if critic_steps < 1:
    raise ValueError(f"gan.critic_steps={critic_steps}: the discriminator needs at least 1 update "
                     "per generator update")
  if packing < 1:
    raise ValueError(f"gan.pack={packing}: PacGAN packs at least 1 example")
  batch = int(config.train.batch_size)
  if batch % (critic_steps * packing):
    raise ValueError(f"train.batch_size={batch} must split into gan.critic_steps={critic_steps} chunks "
                     f"of whole packs of gan.pack={packing}")
  if int(m.num_classes) and dataset.num_classes in (None, 0):
    raise ValueError(f"model.num_classes={m.num_classes}: a class-conditional GAN needs labelled data, "
                     f"and {dataset.name!r} has no labels")
  if int(m.num_classes) and dataset.num_classes and int(m.num_classes) != dataset.num_classes:
    raise ValueError(f"model.num_classes={m.num_classes} but {dataset.name!r} has "
                     f"{dataset.num_classes} classes")
  if float(g.gradient_penalty) < 0 or float(g.r1) < 0 or float(g.clip) < 0:
    raise ValueError("gan.gradient_penalty, gan.r1 and gan.clip must be ≥ 0")


def make_task(config, dataset) -> Task:
  g, m, ev = config.gan, config.model, config.eval
  check_config(config, dataset)
  is_image = dataset.kind == "image"
  if tuple(config.data.transforms):
    raise ValueError(f"data.transforms={list(config.data.transforms)}: GANs model the data as they are "
                     "(images in [0, 1], raw points); set data.transforms=()")
  event_shape = tuple(dataset.element_shape)
  latent_dim = int(m.latent_dim)
  num_classes = int(m.num_classes)
  critic_steps, packing = int(g.critic_steps), int(g.pack)
  loss_kind = g.loss
  if is_image:
    generator = DCGANGenerator(event_shape, int(m.channels), num_classes)
    discriminator = DCGANDiscriminator(int(m.channels), num_classes, bool(m.spectral_norm))
  else:
    train_points = np.asarray(dataset.train.gather(np.arange(len(dataset.train)))["x"])
    check_points(train_points, dataset.name)
    limit = PLOT_MARGIN * float(np.abs(train_points).max())
    generator = MLPGenerator(tuple(m.generator_sizes), event_shape[-1])
    discriminator = MLPDiscriminator(tuple(m.discriminator_sizes), bool(m.spectral_norm))

  def latents(keys):
    return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(keys)

  def generate(g_vars, z, labels, train: bool):
    """(samples, new generator state)."""
    _, state = split_state(g_vars)
    args = (z, labels, train) if is_image else (z,)
    if train and state:
      x, new_state = generator.apply(g_vars, *args, mutable=list(state))
      return x, new_state
    return generator.apply(g_vars, *args), state

  def judge(d_vars, x, labels, update: bool):
    """(logits per pack, new discriminator state)."""
    _, state = split_state(d_vars)
    args = (pack(x, packing),) + ((labels[::packing],) if num_classes else ())
    if update and state:
      return discriminator.apply(d_vars, *args, mutable=list(state))
    return discriminator.apply(d_vars, *args), state

  def init(key, x):
    z = jnp.zeros((packing, latent_dim))
    labels = jnp.zeros((packing,), jnp.int32)
    g_args = (z, labels, True) if is_image else (z,)
    g_vars = generator.init(jax.random.fold_in(key, 0), *g_args)
    d_x = pack(jnp.zeros((packing,) + event_shape), packing)
    d_args = (d_x,) + ((labels[:1],) if num_classes else ())
    d_vars = discriminator.init({"params": jax.random.fold_in(key, 1)}, *d_args)
    return {"generator": dict(g_vars), "discriminator": dict(d_vars)}

  def batch_labels(batch):
    return batch["label"].astype(jnp.int32) if num_classes else None

  def make_step(optimizers):
    def d_loss(d_params, d_state, g_vars, real, labels, z, pack_keys):
      fake, _ = generate(g_vars, z, labels, True)
      fake = jax.lax.stop_gradient(fake)
      d_vars = {"params": d_params, **d_state}
      both = jnp.concatenate([real, fake])
      both_labels = None if labels is None else jnp.concatenate([labels, labels])
      logits, new_state = judge(d_vars, both, both_labels, True)
      real_logits, fake_logits = jnp.split(logits, 2)
      loss = gan_math.discriminator_loss(real_logits, fake_logits, loss_kind)
      terms = {"discriminator_loss": loss, "discriminator_real_logit": jnp.mean(real_logits),
               "discriminator_fake_logit": jnp.mean(fake_logits)}
      fixed = {"params": d_params, **new_state}
      critic = lambda x_packed: discriminator.apply(
          fixed, x_packed, *((labels[::packing],) if num_classes else ()))
      if float(g.gradient_penalty):
        gp = gan_math.gradient_penalty(critic, pack(real, packing), pack(fake, packing), pack_keys)
        terms["discriminator_gradient_penalty"] = gp
        loss = loss + float(g.gradient_penalty) * gp
      if float(g.r1):
        r1 = gan_math.r1_penalty(critic, pack(real, packing))
        terms["discriminator_r1_penalty"] = r1
        loss = loss + 0.5 * float(g.r1) * r1
      return loss, (terms, new_state)

    def g_loss(g_params, g_state, d_vars, z, labels):
      fake, new_state = generate({"params": g_params, **g_state}, z, labels, True)
      logits, _ = judge(d_vars, fake, labels, False)
      loss = gan_math.generator_loss(logits, loss_kind)
      return loss, ({"generator_loss": loss}, new_state)

    def update(group, variables, opt_state, loss_fn, *args):
      params, state = split_state(variables)
      (_, (terms, new_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, *args)
      zero = jax.tree.map(jnp.zeros_like, state)
      new_vars, opt_state = group_update(optimizers[group], variables, opt_state,
                                         {"params": grads, **zero})
      return {**new_vars, **new_state}, opt_state, terms

    def step(state, batch, key):
      params, opt = dict(state["params"]), dict(state["opt_state"])
      labels = batch_labels(batch)
      chunks = jnp.split(batch["x"], critic_steps)
      indices = jnp.split(batch["index"], critic_steps)
      label_chunks = jnp.split(labels, critic_steps) if labels is not None else [None] * critic_steps
      for real, index, chunk_labels in zip(chunks, indices, label_chunks):
        z = latents(fold_in_indices(jax.random.fold_in(key, CRITIC_STREAM), index))
        pack_keys = fold_in_indices(jax.random.fold_in(key, PENALTY_STREAM), index[::packing])
        params["discriminator"], opt["discriminator"], d_terms = update(
            "discriminator", params["discriminator"], opt["discriminator"], d_loss,
            params["generator"], real, chunk_labels, z, pack_keys)
        if float(g.clip):
          d_params = params["discriminator"]["params"]
          params["discriminator"]["params"] = gan_math.clip_weights(d_params, float(g.clip))
      z = latents(fold_in_indices(jax.random.fold_in(key, GENERATOR_STREAM), batch["index"]))
      params["generator"], opt["generator"], g_terms = update(
          "generator", params["generator"], opt["generator"], g_loss, params["discriminator"], z, labels)
      return ({"params": params, "opt_state": opt, "carry": state["carry"]}, {**d_terms, **g_terms})

    return step

  def sample(params, keys, labels=None):
    z = latents(fold_in(keys, 0))
    if num_classes and labels is None:
      labels = jax.vmap(lambda k: jax.random.randint(k, (), 0, num_classes))(fold_in(keys, LABEL_STREAM))
    return generate(params["generator"], z, labels, False)[0]

  # ------------------------------------------------------------------ 2-D points

  def evaluate_points(params, dataset_, key, final):
    if dataset.name not in MODE_MIXTURES:
      return {}
    modes = MODE_MIXTURES[dataset.name]
    points = np.asarray(jax.jit(sample)(params, fold_in_indices(key, jnp.arange(MODE_SAMPLES))))
    return {**mode_coverage(points, modes.centres, modes.std), "num_samples": MODE_SAMPLES}

  def decision_panel(params, key, path, title):
    """D's σ(logit) over the plane (packs of one point repeated m times), real and fake points."""
    axis = np.linspace(-limit, limit, FIGURE_GRID, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    logits = jax.jit(lambda p, x: judge(p["discriminator"], jnp.repeat(x, packing, axis=0), None, False)[0])(
        params, jnp.asarray(grid))
    fake = np.asarray(jax.jit(sample)(params, fold_in_indices(key, jnp.arange(FIGURE_POINTS))))
    real = np.asarray(dataset.test.gather(np.arange(min(FIGURE_POINTS, len(dataset.test))))["x"])
    plt = plots.pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(np.asarray(jax.nn.sigmoid(logits)).reshape(FIGURE_GRID, FIGURE_GRID), origin="lower",
              extent=(-limit, limit, -limit, limit), cmap="RdBu", vmin=0, vmax=1)
    ax.scatter(real[:, 0], real[:, 1], s=2, c="k", label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="orange", label="generated")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path

  def write_points_figures(params, dataset_, prefix, key, final):
    name = os.path.basename(prefix)
    step = "end" if final else f"step {int(name.split('_')[-1]):,}"
    panel = decision_panel(params, key, f"{prefix}_decision.png",
                           f"σ(D) (EMA params) and samples, {step}")
    if not final:
      return [panel]
    return [panel, strip(os.path.dirname(prefix), f"{prefix}_game.png")]

  def strip(samples_dir, path):
    """The decision panels of every step written so far, left to right (the game over time)."""
    panels = sorted(glob.glob(os.path.join(samples_dir, "step_*_decision.png")))
    panels.append(os.path.join(samples_dir, "final_decision.png"))
    images = [plots.pyplot().imread(p) for p in panels]
    height = min(im.shape[0] for im in images)
    row = np.concatenate([im[:height] for im in images], axis=1)
    plots.pyplot().imsave(path, row)
    return path

  # ------------------------------------------------------------------ images

  def evaluate_images(params, dataset_, key, final):
    if not final or not int(ev.num_samples):
      return {}
    net = feature_lib.feature_net(feature_lib.default_feature_net(dataset.name))
    quality = protocol.sample_quality(jax.jit(lambda k: sample(params, k)), dataset, (), net, key,
                                      lambda v: v, num_samples=int(ev.num_samples),
                                      data_seed=int(config.seed), batch_size=int(ev.sample_batch_size),
                                      data_dir=config.data.data_dir)
    return {k: v for k, v in quality.items() if isinstance(v, (int, float, str))}

  def write_image_figures(params, dataset_, prefix, key, final):
    draw = jax.jit(sample)
    if num_classes:
      labels = jnp.repeat(jnp.arange(num_classes), SAMPLES_PER_CLASS)
      keys = fold_in_indices(key, jnp.arange(labels.shape[0]))
      paths = [plots.save_image_grid(np.asarray(draw(params, keys, labels)), f"{prefix}_samples_by_class.png",
                                     SAMPLES_PER_CLASS)]
    else:
      paths = [plots.save_image_grid(np.asarray(draw(params, fold_in_indices(key, jnp.arange(NUM_SAMPLES)))),
                                     f"{prefix}_samples.png", 8)]
    if final:
      paths.append(interpolation_figure(params, key, f"{prefix}_interpolations.png"))
    return paths

  def interpolation_figure(params, key, path):
    """Rows of images along z(t) = cos(πt/2) z₀ + sin(πt/2) z₁ (norm-preserving), t in [0, 1]."""
    ends = latents(fold_in_indices(jax.random.fold_in(key, 1), jnp.arange(2 * INTERPOLATION_ROWS)))
    t = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS)[None, :, None] * (math.pi / 2)
    z = jnp.cos(t) * ends[0::2, None] + jnp.sin(t) * ends[1::2, None]
    z = z.reshape(-1, latent_dim)
    labels = (jnp.repeat(jnp.arange(INTERPOLATION_ROWS) % num_classes, INTERPOLATION_STEPS)
              if num_classes else None)
    images = jax.jit(lambda p, z, y: generate(p["generator"], z, y, False)[0])(params, z, labels)
    return plots.save_image_grid(np.asarray(images), path, INTERPOLATION_STEPS)

  return Task(name=f"gan/{m.kind}-{loss_kind}", init=init, make_step=make_step, groups=GROUPS,
              evaluate=evaluate_images if is_image else evaluate_points,
              write_figures=write_image_figures if is_image else write_points_figures,
              sample=sample)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Trains the configured GAN in `workdir` (resuming if it holds a checkpoint), writes figures and
  eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  return train(make_task(config, dataset), config, workdir, dataset, stop_after_step)
