"""Metric writers: metrics.jsonl (appended), TensorBoard event files and the console."""

from __future__ import annotations

import json
import math
import os

import numpy as np
from absl import logging

METRICS_FILE = "metrics.jsonl"


def _plain(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


class MetricWriter:
  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, METRICS_FILE)
    self._file = open(self.path, "a") if enabled else None
    self._tensorboard = None
    if enabled:
      from tensorboardX import SummaryWriter
      self._tensorboard = SummaryWriter(logdir=workdir, flush_secs=30)

  def write(self, step: int, scalars: dict):
    if not self.enabled:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in scalars.items()}}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    for name, value in record.items():
      if name != "step" and isinstance(value, (int, float)) and math.isfinite(value):
        self._tensorboard.add_scalar(name, value, int(step))
    logging.info("step %d: %s", step, ", ".join(f"{k}={v:.5g}" for k, v in record.items()
                                                   if isinstance(v, float)))

  def flush(self):
    if self.enabled:
      self._file.flush()

  def close(self):
    if self.enabled and not self._file.closed:
      self._file.close()
      self._tensorboard.close()


def read_metrics(workdir_or_path: str) -> list[dict]:
  """Records of metrics.jsonl; where a step was logged twice (a run resumed from an
  earlier checkpoint redoes steps) the later record wins."""
  path = workdir_or_path
  if os.path.isdir(path):
    path = os.path.join(path, METRICS_FILE)
  by_key = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        record = json.loads(line)
        by_key[(record["step"], tuple(sorted(record)))] = record
  return [by_key[k] for k in sorted(by_key, key=lambda k: k[0])]
