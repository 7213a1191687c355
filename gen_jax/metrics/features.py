"""Feature networks for sample metrics, by name.

- `mnist5k_cls`, `digits_cls`: the small classifiers trained by
  `experiments/train_feature_classifier.py`, weights shipped inside the package. Metrics
  computed with them are named after them (`fid_mnist5k_cls`, ...) and are NOT comparable
  with Inception FID.
- `inception_v3`: the FID Inception-v3, from a weights file the user provides.
"""

from __future__ import annotations

import dataclasses
import os
import re
from typing import Any, Callable, Mapping

import numpy as np

from gen_jax.metrics.weights_io import load_variables, save_variables
from gen_jax.nets.classifier import SmallConvClassifier
from gen_jax.nets.inception import FIDInceptionV3

CLASSIFIER_DATASETS = {"mnist5k": 10, "digits": 10}
INCEPTION_WEIGHTS_ENV = "GEN_JAX_INCEPTION_WEIGHTS"
# Stored beside a classifier's variables: features are multiplied by it (unit RMS on the train split).
FEATURE_SCALE_KEY = "feature_scale"
WEIGHTS_DIR = os.path.join(os.path.dirname(__file__), "weights")


@dataclasses.dataclass(frozen=True)
class FeatureNet:
  name: str
  module: Any
  variables: Any
  comparable_with_literature: bool
  feature_scale: float = 1.0

  def apply(self, images):
    """images in [0, 1], (batch, H, W, C) -> (features, logits)."""
    features, logits = self.module.apply(self.variables, images)
    return features * self.feature_scale, logits


def classifier_weights_path(dataset: str) -> str:
  return os.path.join(WEIGHTS_DIR, f"{dataset}_cls.npz")


def load_classifier(dataset: str) -> FeatureNet:
  path = classifier_weights_path(dataset)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no shipped classifier weights at {path}: run "
                            f"`python -m experiments.train_feature_classifier --dataset={dataset}`")
  variables = load_variables(path)
  scale = float(variables.pop(FEATURE_SCALE_KEY))
  return FeatureNet(f"{dataset}_cls", SmallConvClassifier(num_classes=CLASSIFIER_DATASETS[dataset]),
                    variables, comparable_with_literature=False, feature_scale=scale)


def load_inception(path: str = "") -> FeatureNet:
  path = path or os.environ.get(INCEPTION_WEIGHTS_ENV, "")
  if not path or not os.path.exists(path):
    raise FileNotFoundError(
        f"Inception-v3 FID weights not found ({path or f'set ${INCEPTION_WEIGHTS_ENV}'}): download "
        "pt_inception-2015-12-05-6726825d.pth (the pytorch-fid release) on a machine with internet, "
        "convert it with `python -m experiments.convert_inception_weights --torch_weights=FILE "
        f"--output=inception_fid.npz`, and set ${INCEPTION_WEIGHTS_ENV} to the .npz")
  return FeatureNet("inception_v3", FIDInceptionV3(), load_variables(path),
                    comparable_with_literature=True)


FEATURE_NETS: Mapping[str, Callable[..., FeatureNet]] = {
    "mnist5k_cls": lambda **kw: load_classifier("mnist5k"),
    "digits_cls": lambda **kw: load_classifier("digits"),
    "inception_v3": lambda **kw: load_inception(kw.get("weights", "")),
}
DEFAULT_FEATURE_NET = {"mnist5k": "mnist5k_cls", "digits": "digits_cls"}


def feature_net(name: str, **kwargs) -> FeatureNet:
  if name not in FEATURE_NETS:
    raise ValueError(f"unknown feature network {name!r}; choose one of {sorted(FEATURE_NETS)}")
  return FEATURE_NETS[name](**kwargs)


def default_feature_net(dataset_name: str) -> str:
  return DEFAULT_FEATURE_NET.get(dataset_name, "inception_v3")


# torchvision / pytorch-fid state-dict names -> this module's Flax variables.
_TORCH_SUFFIXES = {
    "conv.weight": ("params", "conv/kernel"),
    "bn.weight": ("params", "bn/scale"),
    "bn.bias": ("params", "bn/bias"),
    "bn.running_mean": ("batch_stats", "bn/mean"),
    "bn.running_var": ("batch_stats", "bn/var"),
}


def inception_variables_from_torch(state_dict: Mapping[str, np.ndarray]) -> dict:
  """Maps pytorch-fid's FIDInceptionA/C/E state dict onto `FIDInceptionV3` variables
  (conv OIHW -> HWIO, linear (out, in) -> (in, out), batch-norm running stats to batch_stats)."""
  flat = {}
  for name, value in state_dict.items():
    value = np.asarray(value)
    if name.endswith("num_batches_tracked"):
      continue
    if name.startswith("fc."):
      flat[f"params/fc/{'kernel' if name.endswith('weight') else 'bias'}"] = (
          value.T if name.endswith("weight") else value)
      continue
    match = next(((s, c) for s, c in _TORCH_SUFFIXES.items() if name.endswith("." + s)), None)
    if match is None:
      raise ValueError(f"unexpected tensor {name!r} in the Inception state dict")
    suffix, (collection, leaf) = match
    module_path = re.sub(r"\.", "/", name[: -len(suffix) - 1])
    if suffix == "conv.weight":
      value = value.transpose(2, 3, 1, 0)
    flat[f"{collection}/{module_path}/{leaf}"] = value
  from flax import traverse_util
  return traverse_util.unflatten_dict(flat, sep="/")


def convert_inception_weights(state_dict, output_path: str) -> str:
  return save_variables(output_path, inception_variables_from_torch(state_dict))
