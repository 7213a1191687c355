"""Flax variables <-> .npz files with '/'-joined keys."""

from __future__ import annotations

import os

import numpy as np
from flax import traverse_util


def save_variables(path: str, variables) -> str:
  flat = traverse_util.flatten_dict(variables, sep="/")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  np.savez(path, **{k: np.asarray(v) for k, v in flat.items()})
  return path


def load_variables(path: str) -> dict:
  with np.load(path) as data:
    return traverse_util.unflatten_dict({k: data[k] for k in data.files}, sep="/")
