"""Deep belief nets trained greedily, one RBM per layer (Hinton, Osindero & Teh 2006).

Layer l is an RBM task trained by the generic trainer in `workdir/layer_l` (so each layer
checkpoints and resumes on its own) on the previous layer's hidden states: one fixed
Bernoulli draw of p(h | v) per training example. Evaluation (Salakhutdinov & Murray
2008): AIS log Z of the top RBM, then per test image the bound E_q[log p(v, h) - log q(h|v)]
and its importance-weighted estimate with k samples, in nats. Samples: Gibbs in the top
RBM, then a top-down pass.
"""

from __future__ import annotations

import copy
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.boltzmann import dbn, rbm
from gen_jax.data import evaluation_split, load_dataset
from gen_jax.data.sources import ArraySource, Dataset
from gen_jax.keys import EVAL_STREAM, SAMPLE_STREAM, bernoulli, stream_key
from gen_jax.tasks import rbm as rbm_task
from gen_jax.training import plots, train

NUM_SAMPLES_SHOWN = 64
HIDDEN_SAMPLE_STREAM = 7


def layer_config(config, layer: int, num_hidden: int):
  c = copy.deepcopy(config)
  with c.unlocked():
    c.model = copy.deepcopy(config.rbm)
    c.model.num_hidden = num_hidden
    c.family = "rbm"
    if layer > 0:
      c.data.transforms = ()
    c.eval.ais_chains = config.eval.ais_chains
  return c


def hidden_dataset(params, data: Dataset, key, previous_name: str, visible_copies: int = 1) -> Dataset:
  """The next layer's data: one fixed Bernoulli draw of p(h | v) per example (of
  σ(c + k vᵀW) for an RBM trained with k tied visible copies)."""
  def up(source, k):
    x = jnp.asarray(source.arrays["x"]).reshape(len(source), -1)
    x = x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x
    probs = rbm.hidden_probs(rbm.replicate(params, visible_copies), jnp.tile(x, (1, visible_copies)))
    h = np.asarray(bernoulli(k, probs))
    return ArraySource({"x": (h * 255).astype(np.uint8)[:, :, None, None],
                        "label": source.arrays["label"]})
  k_train, k_test = jax.random.split(key)
  train_source, test_source = up(data.train, k_train), up(data.test, k_test)
  return Dataset(f"{previous_name}_h", "image", train_source, test_source,
                 (params["W"].shape[1], 1, 1), data.num_classes)


def _as_binary_images(x, shape):
  """Binary {0, 1} rows as uint8 {0, 255} images (the pipeline scales uint8 by 1/255)."""
  return ArraySource({"x": (np.asarray(x) * 255).astype(np.uint8).reshape(-1, *shape),
                      "label": np.zeros(len(x), np.int64)})


def binary_dataset(config, dataset: Dataset):
  """The splits after the evaluation transforms (the training binarization for train), as a
  transform-free dataset of {0, 255} images; returns (dataset, train rows, test rows)."""
  image_shape = tuple(dataset.element_shape)
  train_v = evaluation_split(dataset, "train", config.data.transforms, config.seed, flatten=True)
  test_v = evaluation_split(dataset, "test", config.data.transforms, config.seed, flatten=True)
  binary = Dataset(dataset.name, "image", _as_binary_images(train_v, image_shape),
                   _as_binary_images(test_v, image_shape), image_shape, dataset.num_classes)
  return binary, train_v, test_v


def train_and_evaluate(config, workdir: str):
  os.makedirs(workdir, exist_ok=True)
  dataset = load_dataset(config.data)
  image_shape = tuple(dataset.element_shape)
  # Layer 0 trains on the (statically binarized) images; deeper layers on hidden draws.
  current, train_v, test_v = binary_dataset(config, dataset)
  layers = []
  for layer, num_hidden in enumerate(config.model.layer_sizes):
    c = layer_config(config, layer, int(num_hidden))
    with c.unlocked():
      c.data.transforms = ()  # data are already binary
    task = rbm_task.make_task(c, current)
    result = train(task, c, os.path.join(workdir, f"layer_{layer}"), current)
    params = jax.device_get(result.state["params"])
    layers.append(params)
    current = hidden_dataset(params, current, jax.random.fold_in(stream_key(config.seed, HIDDEN_SAMPLE_STREAM), layer),
                             current.name)
  metrics = evaluate(config, layers, train_v, test_v)
  write_figures(config, layers, workdir, image_shape)
  with open(os.path.join(workdir, "eval.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  return layers, metrics


def evaluate(config, layers, train_v, test_v) -> dict:
  key = stream_key(config.seed, EVAL_STREAM)
  top = layers[-1]
  # The top RBM's base rate: the marginals of its training data (draws up the stack).
  below = jnp.asarray(train_v, jnp.float32)
  for depth, params in enumerate(layers[:-1]):
    below = bernoulli(jax.random.fold_in(key, 100 + depth), rbm.hidden_probs(params, below)).astype(jnp.float32)
  log_z, std_err = jax.jit(rbm.ais_log_partition, static_argnums=2)(
      top, jax.random.fold_in(key, 0), int(config.eval.ais_chains), None, rbm.base_rate_bias(below))
  test = jnp.asarray(test_v, jnp.float32)
  k = int(config.eval.importance_samples)
  bound = jax.jit(lambda v, kk: dbn.log_prob_bound(layers, v, kk, log_z, 1))
  iw = jax.jit(lambda v, kk: dbn.log_prob_importance(layers, v, kk, log_z, k))
  bounds, estimates = [], []
  for start in range(0, len(test), int(config.eval.batch_size)):
    chunk = test[start:start + int(config.eval.batch_size)]
    keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(key, 1), jnp.arange(start, start + len(chunk)))
    bounds.append(np.asarray(bound(chunk, keys)))
    estimates.append(np.asarray(iw(chunk, keys)))
  bounds, estimates = np.concatenate(bounds), np.concatenate(estimates)
  return {"layers": [int(p["W"].shape[1]) for p in layers], "top_ais_log_z": float(log_z),
          "top_ais_log_z_std_err": float(std_err), "ais_chains": int(config.eval.ais_chains),
          "test_log_prob_bound": float(bounds.mean()),
          f"test_log_prob_iw{k}": float(estimates.mean()),
          "test_log_prob_sem": float(estimates.std() / math.sqrt(len(estimates))),
          "num_test_examples": int(len(test))}


def write_figures(config, layers, workdir, image_shape):
  key = stream_key(config.seed, SAMPLE_STREAM)
  _, probs = dbn.sample(layers, key, NUM_SAMPLES_SHOWN, int(config.eval.sample_gibbs_steps))
  plots.save_image_grid(np.asarray(probs).reshape(-1, *image_shape),
                        os.path.join(workdir, "samples", "final_samples.png"), 8)
