"""Sigmoid belief nets trained by wake-sleep, as a trainer task.

Wake-sleep as one surrogate loss over params = {"gen", "rec"}:
  L = -mean log p(v, sg(h))  -  mean log q(sg(h̃) | sg(ṽ)),   h ~ q(·|v),  (ṽ, h̃) ~ p,
whose gradient is the wake update for the generative parameters and the sleep update
for the recognition parameters (each term depends on one set only). Every draw is keyed
by the example's global stream position. Evaluation: log p(v) by importance sampling with
the recognition network (k samples), in nats, on the binarized test split.
"""

from __future__ import annotations

import math

import jax
import numpy as np

from gen_jax.boltzmann import sbn
from gen_jax.data import apply_transforms, eval_batches, load_dataset
from gen_jax.data.transforms import check_binary
from gen_jax.keys import fold_in_indices, split_data_key
from gen_jax.training import Task, plots, train

WAKE_STREAM, SLEEP_STREAM = 0, 1
NUM_SAMPLES_SHOWN = 64


def make_task(config, dataset) -> Task:
  m = config.model
  image_shape = tuple(dataset.element_shape)
  n_visible = math.prod(image_shape)
  transforms = tuple(config.data.transforms)

  def init(key, x):
    gen, rec = sbn.init_params(key, n_visible, int(m.num_hidden1), int(m.num_hidden2), float(m.init_scale))
    return {"gen": gen, "rec": rec}

  def loss_fn(params, batch, key):
    """sbn.wake_sleep_loss on the batch: one dream per example, keyed by its stream position."""
    v = batch["x"].reshape(batch["x"].shape[0], -1)
    wake_keys = fold_in_indices(jax.random.fold_in(key, WAKE_STREAM), batch["index"])
    sleep_keys = fold_in_indices(jax.random.fold_in(key, SLEEP_STREAM), batch["index"])
    return sbn.wake_sleep_loss(params, v, wake_keys, sleep_keys)

  def check_data(x):
    check_binary(x, "a sigmoid belief net")

  @jax.jit
  def eval_transform(batch, key):
    return apply_transforms(transforms, batch, key, training=False)

  k = int(config.eval.importance_samples)

  @jax.jit
  def log_prob(params, v, keys):
    return sbn.log_prob_importance(params["gen"], params["rec"], v, keys, k)

  def evaluate(params, dataset_, key, final):
    values = []
    limit = None if final else int(config.eval.batch_size)
    for batch in eval_batches(dataset_.test, int(config.eval.batch_size), limit):
      mask = batch.pop("mask")
      v = eval_transform(batch, split_data_key(config.seed, "test")).reshape(len(mask), -1)
      values.append(np.asarray(log_prob(params, v, fold_in_indices(key, batch["id"])))[mask])
    values = np.concatenate(values)
    return {f"test_log_prob_is{k}": float(values.mean()),
            "test_log_prob_sem": float(values.std() / math.sqrt(len(values))),
            "num_examples": int(len(values))}

  def write_figures(params, dataset_, prefix, key, final):
    _, _, _, probs = sbn.sample_generative(params["gen"], key, NUM_SAMPLES_SHOWN)
    return [plots.save_image_grid(np.asarray(probs).reshape(-1, *image_shape), f"{prefix}_samples.png", 8)]

  return Task(name="sbn-wake-sleep", init=init, loss_fn=loss_fn, check_data=check_data,
              write_figures=write_figures, evaluate=evaluate)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  dataset = load_dataset(config.data)
  return train(make_task(config, dataset), config, workdir, dataset, stop_after_step)
