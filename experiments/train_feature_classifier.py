r"""Trains the small classifier whose features define the bundled-data metrics, and writes
its weights into the package (gen_jax/metrics/weights/<dataset>_cls.npz).

  python -m experiments.train_feature_classifier --dataset=mnist5k
  python -m experiments.train_feature_classifier --dataset=digits

Deterministic (fixed seed, fixed data order). Each training image is binarized (one
Bernoulli draw per pixel) with probability 1/2, so the features suit both grey-level
data and the binary samples of Bernoulli models. Prints the test accuracy on the
grey-level and the statically binarized test split.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags, logging
from tqdm.auto import trange

from gen_jax.data import BatchSampler, load_dataset
from gen_jax.keys import bernoulli
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics.weights_io import save_variables
from gen_jax.nets.classifier import SmallConvClassifier

_DATASET = flags.DEFINE_enum("dataset", "mnist5k", sorted(feature_lib.CLASSIFIER_DATASETS),
                             "Bundled dataset.")
_STEPS = flags.DEFINE_integer("steps", 3000, "Training steps.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")
_OUTPUT = flags.DEFINE_string("output", "", "Weights path (default: inside the package).")
BINARIZE_PROBABILITY = 0.5
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4


def augment(key, images):
  """With probability 1/2 per image, replace it by a Bernoulli draw of its pixels."""
  k_choose, k_draw = jax.random.split(key)
  binary = bernoulli(k_draw, images).astype(images.dtype)
  choose = bernoulli(k_choose, BINARIZE_PROBABILITY, (images.shape[0], 1, 1, 1))
  return jnp.where(choose, binary, images)


def accuracy(model, params, images, labels):
  _, logits = jax.jit(model.apply)(params, images)
  return float(np.mean(np.argmax(np.asarray(logits), -1) == labels))


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  dataset = load_dataset(ml_collections.ConfigDict({"name": _DATASET.value, "data_dir": ""}))
  train_x = dataset.train.arrays["x"].astype(np.float32) / 255.0
  train_y = dataset.train.arrays["label"]
  test_x = dataset.test.arrays["x"].astype(np.float32) / 255.0
  test_y = dataset.test.arrays["label"]
  model = SmallConvClassifier(num_classes=dataset.num_classes)
  key = jax.random.key(_SEED.value)
  params = model.init(key, train_x[:1])
  schedule = optax.cosine_decay_schedule(LEARNING_RATE, _STEPS.value)
  tx = optax.adamw(schedule, weight_decay=WEIGHT_DECAY)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y, k):
    def loss_fn(p):
      _, logits = model.apply(p, augment(k, x))
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  sampler = BatchSampler(len(train_x), _BATCH.value, _SEED.value)
  for i in trange(_STEPS.value, desc="classifier", mininterval=2.0):
    ids = sampler.example_ids(sampler.local_positions(i))
    params, opt_state, loss = step(params, opt_state, train_x[ids], train_y[ids],
                                   jax.random.fold_in(key, i))
  binary_test = np.asarray(bernoulli(jax.random.key(1), test_x), np.float32)
  acc, acc_binary = accuracy(model, params, test_x, test_y), accuracy(model, params, binary_test, test_y)
  # Fix the ruler's scale: features are multiplied by 1 / RMS over the training split.
  train_features, _ = jax.jit(model.apply)(params, train_x)
  scale = 1.0 / float(np.sqrt(np.mean(np.square(np.asarray(train_features)))))
  path = _OUTPUT.value or feature_lib.classifier_weights_path(_DATASET.value)
  save_variables(path, {**jax.device_get(params),
                        feature_lib.FEATURE_SCALE_KEY: np.asarray(scale, np.float32)})
  print(f"{_DATASET.value} classifier: final train loss {float(loss):.4f}; test accuracy "
        f"{acc:.4f} (grey), {acc_binary:.4f} (binarized); weights: {path} "
        f"({os.path.getsize(path) / 1024:.0f} KiB)")


if __name__ == "__main__":
  app.run(main)
