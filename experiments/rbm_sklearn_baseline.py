r"""scikit-learn's BernoulliRBM on the same binarized split, scored with gen_jax's AIS.

  python -m experiments.rbm_sklearn_baseline --workdir=/tmp/runs/rbm_sklearn

Trains `sklearn.neural_network.BernoulliRBM` (PCD-1, its own SGD) on exactly the training
images the gen_jax RBM config trains on (same static binarization), converts it to
{"W", "b", "c"}, and runs the same AIS (100 chains, 14,501 temperatures, base rate of the
training data). Writes eval.json like a gen_jax run.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.boltzmann import rbm
from gen_jax.data import evaluation_split, load_dataset

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_EPOCHS = flags.DEFINE_integer("epochs", 0, "Epochs (0: as many as the config's steps make).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 0.1, "BernoulliRBM learning rate (its default).")
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "rbm.py"), "The RBM config.")


def sklearn_to_params(model):
  return {"W": jnp.asarray(model.components_.T, jnp.float32),
          "b": jnp.asarray(model.intercept_visible_, jnp.float32),
          "c": jnp.asarray(model.intercept_hidden_, jnp.float32)}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from sklearn.neural_network import BernoulliRBM
  config = _CONFIG.value
  dataset = load_dataset(config.data)
  train, test = (evaluation_split(dataset, split, config.data.transforms, config.seed, flatten=True)
                 for split in ("train", "test"))
  batch = int(config.train.batch_size)
  epochs = _EPOCHS.value or max(1, int(config.train.num_steps) * batch // len(train))
  model = BernoulliRBM(n_components=int(config.model.num_hidden), learning_rate=_LEARNING_RATE.value,
                       batch_size=batch, n_iter=epochs, random_state=int(config.seed))
  started = time.perf_counter()
  model.fit(train)
  train_seconds = time.perf_counter() - started
  params = sklearn_to_params(model)
  log_z, std_err = jax.jit(rbm.ais_log_partition, static_argnums=2)(
      params, jax.random.key(0), int(config.eval.ais_chains), None, rbm.base_rate_bias(jnp.asarray(train)))
  log_z, std_err = float(log_z), float(std_err)
  per_example = -np.asarray(rbm.free_energy(params, jnp.asarray(test))) - log_z
  results = {"model": "sklearn BernoulliRBM", "epochs": epochs, "learning_rate": _LEARNING_RATE.value,
             "num_hidden": int(config.model.num_hidden), "train_seconds": train_seconds,
             "ais_log_z": log_z, "ais_log_z_std_err": std_err, "ais_chains": int(config.eval.ais_chains),
             "test_log_likelihood": float(per_example.mean()),
             "test_log_likelihood_sem": float(per_example.std() / np.sqrt(len(per_example))),
             "train_log_likelihood": float(np.mean(-np.asarray(rbm.free_energy(params, jnp.asarray(train))) - log_z))}
  os.makedirs(_WORKDIR.value, exist_ok=True)
  with open(os.path.join(_WORKDIR.value, "eval.json"), "w") as f:
    json.dump(results, f, indent=2)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  app.run(main)
