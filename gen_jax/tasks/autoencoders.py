"""The autoencoder family as a trainer task: AE, DAE, SAE, VAE, IWAE-trained VAE and HVAE.

Losses are batch means of per-example terms, in nats (bits/dim where named `_bpd`).
Evaluation on the test split: the ELBO and IWAE-k bound (models with a likelihood),
or the reconstruction NLL and MSE (deterministic autoencoders).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gen_jax import distributions, nets
from gen_jax.autoencoders import ae as ae_math
from gen_jax.autoencoders import vae as vae_math
from gen_jax.data import apply_transforms, eval_batches, load_dataset
from gen_jax.keys import bernoulli, fold_in_indices, split_data_key
from gen_jax.training import Density, Task, plots, train

# Sub-streams of the loss key.
CORRUPTION_STREAM, LATENT_STREAM = 0, 1
NUM_FIGURE_EXAMPLES = 32
NUM_PRIOR_SAMPLES = 64
INTERPOLATION_STEPS = 10
INTERPOLATION_PAIRS = 8


def bits_per_dim(nats, num_dims):
  """nats per example -> bits per dimension."""
  return nats / (num_dims * math.log(2.0))


@dataclasses.dataclass(frozen=True)
class ModelKind:
  build: Callable             # (model config, image_shape) -> flax module
  make_loss: Callable         # (module, model config, obs model) -> loss_fn
  has_likelihood: bool


def _build_autoencoder(m, image_shape):
  return nets.Autoencoder(tuple(image_shape), m.latent_dim, m.network, tuple(m.sizes), m.likelihood,
                          "sigmoid" if m.kind == "sae" else "linear", m.activation)


def _build_vae(m, image_shape):
  return nets.VAE(tuple(image_shape), m.latent_dim, m.network, tuple(m.sizes), m.likelihood,
                  m.activation)


def _build_hvae(m, image_shape):
  return nets.HierarchicalVAE(tuple(image_shape), (m.latent_dim, m.top_latent_dim), m.network,
                              tuple(m.sizes), tuple(m.latent_sizes), m.likelihood, m.activation)


def _autoencoder_loss(model, m, obs):
  """AE/DAE/SAE: reconstruction NLL of the clean x (+ β · sparsity KL for SAE)."""
  def loss_fn(params, batch, key):
    x = batch["x"]
    x_in = x
    if m.kind == "dae":
      keys = fold_in_indices(jax.random.fold_in(key, CORRUPTION_STREAM), batch["index"])
      x_in = ae_math.corrupt(m.corruption, keys, x, m.corruption_level, obs.data_range)
    code, decoded = model.apply(params, x_in)
    terms = {k: v.mean() for k, v in ae_math.reconstruction_terms(x, decoded, obs).items()}
    loss = terms["recon_nll"]
    if m.kind == "sae":
      terms["sparsity_kl"] = ae_math.sparsity_penalty(code, m.sparsity_target)
      terms["mean_activation"] = code.mean()
      loss = loss + m.sparsity_weight * terms["sparsity_kl"]
    return loss, terms
  return loss_fn


def _elbo_loss(model, m, obs):
  """VAE/HVAE: -ELBO with m.num_samples reparameterized samples."""
  def loss_fn(params, batch, key):
    x = batch["x"]
    keys = fold_in_indices(jax.random.fold_in(key, LATENT_STREAM), batch["index"])
    terms = {k: v.mean() for k, v in vae_math.elbo_terms(model.apply, params, x, keys,
                                                          m.num_samples).items()}
    terms["elbo_bpd"] = -bits_per_dim(terms["elbo"], math.prod(x.shape[1:]))
    return -terms["elbo"], terms
  return loss_fn


def _iwae_loss(model, m, obs):
  """IWAE-k training: -log (1/k) Σ_s w_s, k = m.num_samples."""
  def loss_fn(params, batch, key):
    x = batch["x"]
    keys = fold_in_indices(jax.random.fold_in(key, LATENT_STREAM), batch["index"])
    log_w = vae_math.log_importance_weights(model.apply, params, x, keys, m.num_samples)
    iwae = (jax.nn.logsumexp(log_w, axis=1) - math.log(m.num_samples)).mean()
    terms = {"iwae": iwae, "elbo": log_w.mean(),
             "iwae_bpd": -bits_per_dim(iwae, math.prod(x.shape[1:]))}
    return -iwae, terms
  return loss_fn


MODEL_KINDS: Mapping[str, ModelKind] = {
    "ae": ModelKind(_build_autoencoder, _autoencoder_loss, False),
    "dae": ModelKind(_build_autoencoder, _autoencoder_loss, False),
    "sae": ModelKind(_build_autoencoder, _autoencoder_loss, False),
    "vae": ModelKind(_build_vae, _elbo_loss, True),
    "iwae": ModelKind(_build_vae, _iwae_loss, True),
    "hvae": ModelKind(_build_hvae, _elbo_loss, True),
}


def model_kind(name: str) -> ModelKind:
  if name not in MODEL_KINDS:
    raise ValueError(f"unknown model.kind {name!r}; choose one of {sorted(MODEL_KINDS)}")
  return MODEL_KINDS[name]


RANGE_ROUNDING_SLACK = 1e-6


def check_data_range(x, obs, transforms):
  """Raises when data after the transforms fall outside what the likelihood accepts."""
  x = np.asarray(x)
  if obs.data_range == "binary" and not np.all((x == 0) | (x == 1)):
    raise ValueError(f"the {obs.name} likelihood needs data in {{0, 1}}, but after data.transforms="
                     f"{list(transforms)} values span [{x.min():.3g}, {x.max():.3g}]: add "
                     "'dynamic_binarize' or 'static_binarize' to data.transforms")
  # XLA computes k / 255 as k · (1/255), so a 255 pixel scales to 1 + 1 ulp: allow rounding.
  slack = RANGE_ROUNDING_SLACK
  if obs.data_range == "symmetric" and (x.min() < -1 - slack or x.max() > 1 + slack or x.min() >= 0):
    raise ValueError(f"the {obs.name} likelihood needs data in [-1, 1], but after data.transforms="
                     f"{list(transforms)} values span [{x.min():.3g}, {x.max():.3g}]: end "
                     "data.transforms with 'scale_to_symmetric'")


def _to_display(x, obs):
  x = np.asarray(x)
  return (x + 1.0) / 2.0 if obs.data_range == "symmetric" else x


def make_task(config, dataset) -> Task:
  m = config.model
  kind = model_kind(m.kind)
  obs = distributions.observation_model(m.likelihood)
  image_shape = tuple(dataset.element_shape)
  if m.get("image_shape") and tuple(m.image_shape) != image_shape:
    raise ValueError(f"model.image_shape={tuple(m.image_shape)} but data {config.data.name!r} has "
                     f"images of shape {image_shape}: remove model.image_shape or change data.name")
  model = kind.build(m, image_shape)
  loss_fn = kind.make_loss(model, m, obs)
  transforms = tuple(config.data.transforms)
  num_dims = math.prod(image_shape)
  ev = config.eval

  def init(key, x):
    if kind.has_likelihood:
      return model.init(key, x, jax.random.fold_in(key, 1))
    return model.init(key, x)

  def check_data(x):
    nets.autoencoders.check_image_batch(jnp.asarray(x), image_shape, type(model).__name__)
    check_data_range(x, obs, transforms)

  @jax.jit
  def eval_transform(batch, key):
    return apply_transforms(transforms, batch, key, training=False)

  @jax.jit
  def eval_elbo(params, x, keys):
    return vae_math.elbo(model.apply, params, x, keys, int(ev.elbo_samples))

  @jax.jit
  def eval_iwae(params, x, keys):
    return vae_math.iwae_bound(model.apply, params, x, keys, int(ev.iwae_samples),
                               chunk_size=int(ev.iwae_chunk_size))

  @jax.jit
  def eval_recon(params, x):
    _, decoded = model.apply(params, x)
    return ae_math.reconstruction_terms(x, decoded, obs)

  test_key = split_data_key(config.seed, "test")

  def evaluate(params, dataset, key, final):
    latent_key = key
    totals, count = {}, 0
    use_iwae = final and kind.has_likelihood and int(ev.iwae_samples) > 0
    batch_size = int(ev.iwae_batch_size if use_iwae else ev.batch_size)
    limit = ev.get("num_examples") or None
    batches = list(eval_batches(dataset.test, batch_size, limit))
    for batch in tqdm(batches, desc="evaluate", unit="batch", mininterval=2.0,
                      disable=not (final and use_iwae)):
      mask = batch.pop("mask")
      x = eval_transform(batch, test_key)
      keys = fold_in_indices(latent_key, batch["id"])
      if kind.has_likelihood:
        values = {"elbo": eval_elbo(params, x, keys)}
        if use_iwae:
          values[f"iwae{int(ev.iwae_samples)}"] = eval_iwae(params, x, keys)
      else:
        values = dict(eval_recon(params, x))
      for name, value in values.items():
        totals[name] = totals.get(name, 0.0) + float(np.sum(np.asarray(value)[mask]))
      count += int(mask.sum())
    metrics = {name: total / count for name, total in totals.items()}
    if kind.has_likelihood:
      metrics["elbo_bpd"] = -bits_per_dim(metrics["elbo"], num_dims)
      if use_iwae:
        nll = -metrics[f"iwae{int(ev.iwae_samples)}"]
        metrics[f"nll_iwae{int(ev.iwae_samples)}"] = nll
        metrics[f"nll_iwae{int(ev.iwae_samples)}_bpd"] = bits_per_dim(nll, num_dims)
    metrics["num_examples"] = count
    return metrics

  def write_figures(params, dataset, prefix, key, final):
    first = next(eval_batches(dataset.test, NUM_FIGURE_EXAMPLES))
    first.pop("mask")
    x = eval_transform(first, test_key)
    paths = []
    x_in = x
    if m.kind == "dae":
      x_in = ae_math.corrupt(m.corruption, jax.random.fold_in(key, 1), x, m.corruption_level,
                             obs.data_range)
    recon = model.apply(params, x_in, method="reconstruct")
    rows = [x, x_in, recon] if m.kind == "dae" else [x, recon]
    # Interleave rows of 8: originals, (corrupted,) reconstructions.
    blocks = [np.asarray(r).reshape(-1, 8, *image_shape) for r in rows]
    grid = np.stack(blocks, axis=1).reshape(-1, *image_shape)
    paths.append(plots.save_image_grid(_to_display(grid, obs), f"{prefix}_reconstructions.png", 8))
    if kind.has_likelihood:
      latent_shape = model.apply(params, method="latent_dims")
      z = jax.random.normal(jax.random.fold_in(key, 2), (NUM_PRIOR_SAMPLES, *latent_shape))
      samples = model.apply(params, z, jax.random.fold_in(key, 3), method="generate")
      paths.append(plots.save_image_grid(_to_display(samples, obs), f"{prefix}_samples.png", 8))
    if final and m.kind in ("vae", "iwae"):
      mean, _ = model.apply(params, x, method="encode")
      start, stop = mean[:INTERPOLATION_PAIRS], mean[INTERPOLATION_PAIRS:2 * INTERPOLATION_PAIRS]
      w = jnp.linspace(0.0, 1.0, INTERPOLATION_STEPS)[None, :, None]
      path = (1 - w) * start[:, None] + w * stop[:, None]
      frames = model.apply(params, path.reshape(-1, m.latent_dim), method="generate")
      paths.append(plots.save_image_grid(_to_display(frames, obs), f"{prefix}_interpolations.png",
                                         INTERPOLATION_STEPS))
    if final:
      codes, code_labels = [], []
      for batch in eval_batches(dataset.test, 100):
        mask = batch.pop("mask")
        xb = eval_transform(batch, test_key)
        code = (model.apply(params, xb, method="encode")[0] if kind.has_likelihood
                else model.apply(params, xb, method="encode"))
        codes.append(np.asarray(code).reshape(len(mask), -1)[mask])
        code_labels.append(batch["label"][mask])
      codes = np.concatenate(codes)
      title = "latent means" if kind.has_likelihood else "codes"
      if codes.shape[1] > 2:
        centred = codes - codes.mean(0)
        codes = centred @ np.linalg.svd(centred, full_matrices=False)[2][:2].T
        title = f"PCA of {title}"
      paths.append(plots.save_scatter(codes, f"{prefix}_latents.png", np.concatenate(code_labels),
                                      f"{m.kind} on {config.data.name}: {title}"))
    return paths

  def sample(params, keys):
    """One image per key: z ~ p(z), then a draw of p(x | z) for Bernoulli decoders (binary
    images, like the binarized data) or its mean for continuous ones; in [0, 1]."""
    latent_shape = model.apply(params, method="latent_dims")

    def generate_one(key):
      z = jax.random.normal(jax.random.fold_in(key, 0), (1, *latent_shape))
      return model.apply(params, z, jax.random.fold_in(key, 1), method="generate")[0]

    mean = jax.vmap(generate_one)(keys)
    if obs.data_range == "binary":
      draw_keys = jax.vmap(lambda k: jax.random.fold_in(k, 2))(keys)
      return jax.vmap(lambda k, p: bernoulli(k, p).astype(jnp.float32))(draw_keys, mean)
    return (mean + 1.0) / 2.0

  density = None
  if kind.has_likelihood:
    k = max(1, int(ev.iwae_samples))
    density = Density.for_images(
        lambda params, x, keys: vae_math.iwae_bound(model.apply, params, x, keys, k,
                                                    chunk_size=min(k, int(ev.iwae_chunk_size))),
        f"the IWAE-{k} bound (eval.iwae_samples={k} importance samples; a lower bound on "
        "log p(x) that tightens as the count grows)", obs.data_range, obs.name == "gaussian")

  return Task(name=m.kind, init=init, loss_fn=loss_fn, check_data=check_data,
              write_figures=write_figures, evaluate=evaluate, density=density,
              sample=sample if kind.has_likelihood else None,
              to_display=lambda x: (x + 1.0) / 2.0 if obs.data_range == "symmetric" else x)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Trains the configured autoencoder in `workdir` (resuming if it holds a checkpoint),
  writes figures and eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  task = make_task(config, dataset)
  return train(task, config, workdir, dataset, stop_after_step)
