"""The shared body of every launcher: `--workdir`, `--config` (ml_collections, locked), quiet
logging unless -v is given, then the family's `train_and_evaluate(config, workdir)`."""

from __future__ import annotations

import os
from typing import Any, Callable

from absl import app, flags, logging
from ml_collections import config_flags

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")


def summarize(result: Any) -> str:
  """A one-line account of what train_and_evaluate returned."""
  if hasattr(result, "eval_metrics"):
    return f"finished at step {result.step}; test metrics: {result.eval_metrics}"
  return f"finished: {result}"


def run(train_and_evaluate: Callable, default_config: str,
        describe: Callable[[Any], str] = summarize):
  """Defines the flags, then runs `train_and_evaluate` under absl."""
  workdir = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, samples).",
                                required=True)
  config = config_flags.DEFINE_config_file("config", os.path.join(CONFIG_DIR, default_config),
                                           "Experiment config file[:variant].", lock_config=True)

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
      logging.set_verbosity(logging.WARNING)  # Orbax and TFDS log every file operation at INFO.
    print(describe(train_and_evaluate(config.value, workdir.value)))

  app.run(main)
