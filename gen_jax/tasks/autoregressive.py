"""Autoregressive models as a trainer task: maximum likelihood by the chain rule, the exact test
NLL, samples drawn one position at a time.

`model.kind` picks the model (`KINDS`); each models one kind of data:
- binary images (data.transforms binarize them): `fixed_order` (the thesis's MLP over the
  previous k pixels), `fvsbn`, `nade`, `made`, `gru` and `lstm` (the thesis's RNN over pixels),
  `pixelcnn` (gated, no blind spot) and `transformer` (binary tokens, KV-cache sampling);
- 8-bit images (data.transforms=()): `pixelcnn_pp` (the discretized logistic mixture) and
  `transformer_8bit` (256 tokens);
- 2-D points: `mixture_made`, p(x₁) p(x₂ | x₁) with Gaussian-mixture conditionals.

An order-agnostic MADE (`model.num_masks` = K > 1) trains each example under an ordering drawn
from its key (one of K fixed ones, sharing the weights); its density is the ensemble
log (1/K) Σ_k p_k(x), exact since each p_k is, and a sample draws its ordering, then follows it.

Class-conditional models (`model.num_classes` > 0: pixelcnn, pixelcnn_pp, transformer,
transformer_8bit) train on log p(x | y) with the data's labels; their density is the exact
marginal log p(x) = log (1/C) Σ_y p(x | y) under uniform labels (C passes), reported as `nll`
beside `nll_given_label`, and they sample chosen classes (a row per class in the figures).

Evaluation gives the exact test `nll` (nats per example, `nll_sem`) and `nll_bpd`; for points
also `data_nll`, the true density's NLL of the same points. Figures: sample grids (images), or
the model's density beside the true one with samples (points).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.autoregressive import discretized_logistic as dl
from gen_jax.autoregressive import likelihood
from gen_jax.data import apply_transforms, eval_batches, load_dataset
from gen_jax.data.transforms import PIXEL_MAX, check_8bit, check_binary, check_points
from gen_jax.keys import fold_in_indices, split_data_key
from gen_jax.metrics.likelihood import mean_and_sem, nats_to_bpd
from gen_jax.nets import MADE, CausalTransformer, PixelCNN
from gen_jax.nets.autoregressive import (NADE, FixedOrderMLP, MixtureMADE, OrderAgnosticMADE,
                                         PixelRNN, made_orderings)
from gen_jax.training import Density, Task, plots, train

NUM_SAMPLES = 64          # image grid
SAMPLES_PER_CLASS = 8     # class-conditional grids: a row per class
FIGURE_GRID = 200         # 2-D density heat maps: points per side
FIGURE_POINTS = 2000      # 2-D samples
PLOT_LIMIT = 1.1          # 2-D panels span 1.1 × the data's largest |coordinate|
BINARY, PIXELS, POINTS = "binary", "8-bit", "points"
LABEL_STREAM = 1          # sub-stream of a sample's key that draws its label (conditional models)
MASK_STREAM = 2           # ... that draws its MADE ordering (order-agnostic MADEs), in training and sampling


@dataclasses.dataclass(frozen=True)
class ModelKind:
  """How one model is built, what data it takes, and how its outputs score and draw them.

  build(model config, event shape) -> a Flax module; `data` is BINARY, PIXELS or POINTS;
  `flat`: the network takes (batch, D) vectors (else images); `tokens`: integer tokens (a
  transformer or a recurrent net: `init_cache` and `decode` sample one cached step per token);
  `conditional`: it can take class labels; `masked`: a MADE with fixed degrees, so every hidden
  layer must be at least D - 1 wide."""
  build: Callable
  data: str
  flat: bool = True
  tokens: bool = False
  conditional: bool = False
  masked: bool = False


def num_classes(m) -> int:
  return int(m.get("num_classes", 0))


def num_masks(m) -> int:
  """MADE orderings (order-agnostic training, an ensemble over them at test time); 1: one MADE."""
  return int(m.get("num_masks", 1))


def build_transformer(m, num_dims, vocab):
  return CausalTransformer(int(m.num_layers), int(m.num_heads), int(m.embed_dim), vocab, num_dims,
                           num_classes(m))


KINDS = {
    "fixed_order": ModelKind(lambda m, d: FixedOrderMLP(int(m.context), tuple(m.window_hidden_sizes)), BINARY),
    "fvsbn": ModelKind(lambda m, d: MADE(hidden_sizes=()), BINARY),
    "nade": ModelKind(lambda m, d: NADE(int(m.hidden_size)), BINARY),
    "made": ModelKind(lambda m, d: (OrderAgnosticMADE(tuple(m.hidden_sizes), num_masks(m))
                                    if num_masks(m) > 1 else MADE(hidden_sizes=tuple(m.hidden_sizes))),
                      BINARY, masked=True),
    "pixelcnn": ModelKind(lambda m, d: PixelCNN(int(m.channels), int(m.num_layers),
                                                num_classes=num_classes(m)),
                          BINARY, flat=False, conditional=True),
    "transformer": ModelKind(lambda m, d: build_transformer(m, d, 2), BINARY, tokens=True,
                             conditional=True),
    "gru": ModelKind(lambda m, d: PixelRNN(int(m.rnn_hidden_size), 2, "gru", num_classes(m)), BINARY,
                     tokens=True, conditional=True),
    "lstm": ModelKind(lambda m, d: PixelRNN(int(m.rnn_hidden_size), 2, "lstm", num_classes(m)), BINARY,
                      tokens=True, conditional=True),
    "pixelcnn_pp": ModelKind(lambda m, d: PixelCNN(int(m.channels), int(m.num_layers),
                                                   dl.pixel_mixture_size(d[-1], int(m.num_mixtures)),
                                                   num_classes(m)),
                             PIXELS, flat=False, conditional=True),
    "transformer_8bit": ModelKind(lambda m, d: build_transformer(m, d, int(PIXEL_MAX) + 1), PIXELS,
                                  tokens=True, conditional=True),
    "mixture_made": ModelKind(lambda m, d: MixtureMADE(tuple(m.hidden_sizes), int(m.num_mixtures)),
                              POINTS, masked=True),
}


def model_kind(name: str) -> ModelKind:
  if name not in KINDS:
    raise ValueError(f"unknown model.kind {name!r}; choose one of {sorted(KINDS)}")
  return KINDS[name]


def check_config(m, kind: ModelKind, dataset, transforms):
  """Raises a one-line error when the data or the config do not fit the model."""
  wanted = {BINARY: "binary images", PIXELS: "8-bit images", POINTS: "2-D points"}[kind.data]
  if (dataset.kind == "points") != (kind.data == POINTS):
    raise ValueError(f"model.kind={m.kind!r} models {wanted}, but data {dataset.name!r} holds "
                     f"{dataset.kind}s: use autoregressive_2d.py for points and "
                     "autoregressive_mnist5k.py / autoregressive_digits.py for images")
  binarized = any("binarize" in name for name in transforms)
  if kind.data == BINARY and not binarized:
    raise ValueError(f"model.kind={m.kind!r} models binary images: add 'dynamic_binarize' or "
                     "'static_binarize' to data.transforms (or use the 8-bit kinds pixelcnn_pp, "
                     "transformer_8bit)")
  if kind.data != BINARY and transforms:
    raise ValueError(f"model.kind={m.kind!r} models the raw {wanted}: set data.transforms=()")
  num_dims = math.prod(dataset.element_shape)
  if kind.masked and min(m.hidden_sizes) < num_dims - 1:
    raise ValueError(f"model.hidden_sizes={tuple(m.hidden_sizes)}: a MADE over {num_dims} "
                     f"dimensions needs every hidden layer at least {num_dims - 1} wide")
  if num_masks(m) < 1 or (num_masks(m) > 1 and m.kind != "made"):
    raise ValueError(f"model.num_masks={num_masks(m)}: orderings apply to model.kind='made' only "
                     "(1 for any other kind)")
  if num_classes(m) and not kind.conditional:
    raise ValueError(f"model.kind={m.kind!r} takes no labels: set model.num_classes=0, or use one of "
                     f"{sorted(n for n, k in KINDS.items() if k.conditional)}")
  if num_classes(m) and not 0 < num_classes(m) <= dataset.num_classes:
    raise ValueError(f"model.num_classes={num_classes(m)} but data {dataset.name!r} has "
                     + (f"{dataset.num_classes} classes" if dataset.num_classes else "no labels")
                     + ": a class-conditional model needs labelled data with that many classes")


def make_task(config, dataset) -> Task:
  m, ev = config.model, config.eval
  kind = model_kind(m.kind)
  transforms = tuple(config.data.transforms)
  check_config(m, kind, dataset, transforms)
  event_shape = tuple(dataset.element_shape)
  num_dims = math.prod(event_shape)
  model = kind.build(m, num_dims if kind.flat or kind.tokens else event_shape)
  num_mixtures = int(m.get("num_mixtures", 0))

  # Model space: binary images in {0, 1}, 8-bit images as k/255 in [0, 1], points as given.
  def network_input(x):
    if kind.tokens:
      return jnp.round(x.reshape(x.shape[0], -1) * (1.0 if kind.data == BINARY else PIXEL_MAX)).astype(jnp.int32)
    return x.reshape(x.shape[0], -1) if kind.flat else x

  classes = num_classes(m)

  masks = num_masks(m)
  orderings = jnp.asarray(made_orderings(num_dims, masks))

  def log_likelihood(params, x, labels=None):
    """(batch,) exact log p(x) in nats: log p(x | labels) for a conditional model, and for an
    order-agnostic MADE log p_k(x) under the orderings k = labels."""
    outputs = model.apply(params, network_input(x), *(() if labels is None else (labels,)))
    if kind.tokens:
      return likelihood.categorical_log_likelihood(outputs, network_input(x))
    if kind.data == BINARY:
      return likelihood.bernoulli_log_likelihood(outputs, x.reshape(outputs.shape))
    if kind.data == PIXELS:
      return likelihood.pixel_mixture_log_likelihood(outputs, 2.0 * x - 1.0, num_mixtures)
    return likelihood.gaussian_mixture_conditionals_log_likelihood(outputs, x)

  # What the network is told besides x: the class (conditional models) or the ordering (an
  # order-agnostic MADE); the density averages over them: log (1/C) Σ_c p(x | c).
  choices = classes or (masks if masks > 1 else 0)

  def marginal_log_likelihood(params, x):
    """log p(x) = log (1/C) Σ_c p(x | c) over the classes or the orderings, else log p(x)."""
    if not choices:
      return log_likelihood(params, x)
    per_choice = jnp.stack([log_likelihood(params, x, jnp.full(x.shape[:1], c, jnp.int32))
                            for c in range(choices)], axis=-1)
    return jax.nn.logsumexp(per_choice, axis=-1) - math.log(choices)

  def batch_choices(batch, key):
    """The labels, or each example's ordering drawn from fold_in(key, its stream position)."""
    if classes:
      return (batch["label"].astype(jnp.int32),)
    if choices:
      keys = fold_in_indices(jax.random.fold_in(key, MASK_STREAM), batch["index"])
      return (jax.vmap(lambda k: jax.random.randint(k, (), 0, masks))(keys),)
    return ()

  def init(key, x):
    return model.init(key, network_input(x), *((jnp.zeros(x.shape[:1], jnp.int32),) if choices else ()))

  def loss_fn(params, batch, key):
    return likelihood.nll_loss(log_likelihood, params, batch["x"], *batch_choices(batch, key))

  def sample(params, keys, labels=None):
    """Samples in the data's units (images in [0, 1]), one position at a time; a conditional
    model's labels are drawn from the keys unless given."""
    n = keys.shape[0]
    if classes and labels is None:
      labels = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, LABEL_STREAM), (), 0,
                                                     classes))(keys)
    orders = None
    if masks > 1:   # a mixture over the orderings: each sample draws its ordering, then follows it
      labels = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, MASK_STREAM), (), 0, masks))(keys)
      orders = orderings[labels]
    label_args = (labels,) if choices else ()
    if kind.tokens:
      step = lambda cache, previous, p: model.apply(params, cache, previous, p, *label_args,
                                                    method=model.decode)
      tokens = likelihood.sample_with_cache(step, model.init_cache(n), likelihood.draw_categorical,
                                            keys, num_dims)
      scale = 1.0 if kind.data == BINARY else PIXEL_MAX
      return (tokens.astype(jnp.float32) / scale).reshape(n, *event_shape)
    outputs_fn = lambda canvas: model.apply(params, canvas, *label_args)
    if kind.data == BINARY:
      shape = (num_dims,) if kind.flat else event_shape
      x = likelihood.sample_in_order(outputs_fn, likelihood.draw_bernoulli, keys, shape, orders=orders)
      return x.reshape(n, *event_shape)
    if kind.data == PIXELS:  # pixels are drawn on [-1, 1]; the network reads them as k/255 in [0, 1]
      draw = lambda key, out: dl.sample_pixel_mixture(key, out, event_shape[-1], num_mixtures)
      pixel_outputs = lambda canvas: outputs_fn((canvas + 1.0) / 2.0)
      return (likelihood.sample_in_order(pixel_outputs, draw, keys, event_shape) + 1.0) / 2.0
    return likelihood.sample_in_order(outputs_fn, likelihood.draw_gaussian_mixture, keys, event_shape)

  log_likelihood_batch = jax.jit(marginal_log_likelihood)
  conditional_log_likelihood_batch = jax.jit(log_likelihood)
  test_key = split_data_key(config.seed, "test")

  @jax.jit
  def eval_transform(batch):
    return apply_transforms(transforms, batch, test_key, training=False)

  def test_log_likelihoods(params):
    """The test split's log p(x), its true log-density (points) and log p(x | y) (conditional)."""
    values = {"model": [], "data": [], "given_label": []}
    for batch in eval_batches(dataset.test, int(ev.batch_size), int(ev.num_examples) or None):
      mask = batch.pop("mask")
      x = eval_transform(batch)
      values["model"].append(np.asarray(log_likelihood_batch(params, x))[mask])
      if dataset.log_prob is not None:
        values["data"].append(np.asarray(dataset.log_prob(x))[mask])
      if classes:
        labels = batch["label"].astype(np.int32)
        values["given_label"].append(np.asarray(conditional_log_likelihood_batch(params, x, labels))[mask])
    return {name: np.concatenate(parts) for name, parts in values.items() if parts}

  def evaluate(params, dataset, key, final):
    log_p = test_log_likelihoods(params)
    nll, nll_sem = mean_and_sem(-log_p["model"])
    metrics = {"nll": nll, "nll_sem": nll_sem, "num_examples": int(len(log_p["model"]))}
    if "given_label" in log_p:
      metrics["nll_given_label"], metrics["nll_given_label_sem"] = mean_and_sem(-log_p["given_label"])
    if kind.data == POINTS:
      if "data" in log_p:
        metrics["data_nll"], metrics["data_nll_sem"] = mean_and_sem(-log_p["data"])
    else:
      metrics["nll_bpd"] = float(nats_to_bpd(nll, num_dims))
      metrics["nll_bpd_sem"] = float(nats_to_bpd(nll_sem, num_dims))
    return metrics

  draw_samples = jax.jit(sample)

  def write_figures(params, dataset, prefix, key, final):
    if kind.data == POINTS:
      points = np.asarray(draw_samples(params, fold_in_indices(key, jnp.arange(FIGURE_POINTS))))
      return [density_figure(params, points, f"{prefix}_density.png")]
    if classes:   # a row of SAMPLES_PER_CLASS per class
      labels = jnp.repeat(jnp.arange(classes), SAMPLES_PER_CLASS)
      images = draw_samples(params, fold_in_indices(key, jnp.arange(len(labels))), labels)
      return [plots.save_image_grid(np.asarray(images), f"{prefix}_samples_by_class.png", SAMPLES_PER_CLASS)]
    images = np.asarray(draw_samples(params, fold_in_indices(key, jnp.arange(NUM_SAMPLES))))
    return [plots.save_image_grid(images, f"{prefix}_samples.png", 8)]

  def density_figure(params, samples, path):
    test_points = np.asarray(dataset.test.gather(np.arange(min(FIGURE_POINTS, len(dataset.test))))["x"])
    limit = PLOT_LIMIT * float(np.abs(test_points).max())
    axis = np.linspace(-limit, limit, FIGURE_GRID, dtype=np.float32)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    panels = []
    if dataset.log_prob is not None:
      panels.append(("true density", np.exp(np.asarray(dataset.log_prob(jnp.asarray(grid))))))
    panels.append((f"{m.kind} density", np.exp(np.asarray(log_likelihood_batch(params, jnp.asarray(grid))))))
    return plots.save_density_panels(panels, samples, limit, path,
                                     f"{m.kind} on {dataset.name}: p(x₁) p(x₂ | x₁)")

  if kind.data == POINTS:
    check_points(dataset.train.gather(np.arange(len(dataset.train)))["x"], dataset.name)
    density = Density(lambda params, x, keys: log_likelihood_batch(params, x),
                      f"exact (the chain rule through the {m.kind})")
    check_data = lambda x: None
  else:
    over = (f"; log (1/{classes}) Σ_y p(x | y) over the classes)" if classes else
            f"; log (1/{masks}) Σ_k p_k(x) over the orderings)" if choices else ")")
    density = Density.for_images(lambda params, x, keys: log_likelihood_batch(params, x),
                                 f"exact (the chain rule through the {m.kind}{over}",
                                 "binary" if kind.data == BINARY else "unit", continuous=False)
    check_data = (lambda x: check_binary(x, m.kind)) if kind.data == BINARY else \
        (lambda x: check_8bit(x, "set data.transforms=() (no binarization or dequantization)"))
  return Task(name=f"autoregressive/{m.kind}", init=init, loss_fn=loss_fn, check_data=check_data,
              evaluate=evaluate, write_figures=write_figures, sample=sample, density=density)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Trains the configured autoregressive model in `workdir` (resuming if it holds a
  checkpoint), writes figures and eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  task = make_task(config, dataset)
  return train(task, config, workdir, dataset, stop_after_step)
