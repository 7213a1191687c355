r"""Evaluates a run: loads its checkpoint (EMA params by default), draws samples and writes
every metric that applies to `DIR/eval.json`.

  python -m experiments.evaluate --workdir=/tmp/vae
  python -m experiments.evaluate --floor=mnist5k --workdir=/tmp/runs/floor_mnist5k

Samplers get FID / KID / IS / precision / recall against the training split in the feature
space of `--feature_net` (default: the shipped classifier for mnist5k and digits, Inception-v3
elsewhere); families with a likelihood or bound also get their NLL or bits/dim. `--floor`
scores the real test split against the training split instead: the best any model can reach
on that ruler.
"""

from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
from absl import flags

from experiments import launch
from gen_jax.data import load_dataset
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import protocol
from gen_jax.tasks import registry

_WORKDIR = flags.DEFINE_string("workdir", None, "The run's directory.", required=True)
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 0, "Samples to draw (0: the test split's size).")
_FEATURE_NET = flags.DEFINE_string("feature_net", "", "Feature network (default by dataset).")
_INCEPTION_WEIGHTS = flags.DEFINE_string("inception_weights", "", "Inception-v3 .npz (for inception_v3).")
_PARAMS = flags.DEFINE_enum("params", "ema_params", ["ema_params", "params"], "Which parameters.")
_FLOOR = flags.DEFINE_string("floor", "", "Score this dataset's real test split instead of a run.")
_GRAYSCALE = flags.DEFINE_bool("grayscale", False, "With --floor: score the grayscale pixels (the "
                               "data of diffusion runs) instead of the binarized ones.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the sample draws (and, with --floor, of the data "
                             "binarization, as a run's config.seed).")
EVAL_FILE = "eval.json"
FLOOR_TRANSFORMS = {"mnist5k": ("static_binarize",), "digits": ("static_binarize",)}


def evaluate_run(workdir: str, num_samples: int = 0, feature_net: str = "",
                 which: str = "ema_params", seed: int = 0, inception_weights: str = "") -> dict:
  run = registry.load_run(workdir, which)
  config, dataset, task, params = run.config, run.dataset, run.task, run.params
  key = jax.random.key(seed)
  started = time.perf_counter()
  results = {"step": run.step, "params": which, "dataset": config.data.name, "split": "test"}
  if task.evaluate:
    results.update(task.evaluate(params, dataset, jax.random.fold_in(key, 0), True))
  if task.sample and dataset.kind == "image":
    net = feature_lib.feature_net(feature_net or feature_lib.default_feature_net(dataset.name),
                                  weights=inception_weights)
    results.update(protocol.sample_quality(
        lambda keys: task.sample(params, keys), dataset, tuple(config.data.transforms), net,
        jax.random.fold_in(key, 1), task.to_display,
        num_samples=num_samples or len(dataset.test), data_seed=int(config.seed),
        data_dir=config.data.data_dir))
  results["eval_seconds"] = time.perf_counter() - started
  with open(os.path.join(workdir, EVAL_FILE), "w") as f:
    json.dump(results, f, indent=2)
  return results


def evaluate_floor(dataset_name: str, workdir: str, feature_net: str = "", seed: int = 0,
                   inception_weights: str = "", grayscale: bool = False) -> dict:
  dataset = load_dataset(ml_collections.ConfigDict({"name": dataset_name, "data_dir": ""}))
  net = feature_lib.feature_net(feature_net or feature_lib.default_feature_net(dataset_name),
                                weights=inception_weights)
  transforms = () if grayscale else FLOOR_TRANSFORMS.get(dataset_name, ())
  results = {"dataset": dataset_name, "transforms": list(transforms), **protocol.real_vs_real(
      dataset, transforms, net, jax.random.fold_in(jax.random.key(seed), 1), lambda x: x,
      data_seed=seed)}
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, EVAL_FILE), "w") as f:
    json.dump(results, f, indent=2)
  return results


def main(argv):
  del argv
  if _FLOOR.value:
    results = evaluate_floor(_FLOOR.value, _WORKDIR.value, _FEATURE_NET.value, _SEED.value,
                             _INCEPTION_WEIGHTS.value, _GRAYSCALE.value)
  else:
    results = evaluate_run(_WORKDIR.value, _NUM_SAMPLES.value, _FEATURE_NET.value, _PARAMS.value,
                           _SEED.value, _INCEPTION_WEIGHTS.value)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  launch.run_tool(main)
