r"""Launcher for sigmoid belief nets trained by wake-sleep.

  python -m experiments.sbn --workdir=/tmp/sbn
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.tasks import sbn

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "sbn.py"),
    "Experiment config file[:variant].", lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  result = sbn.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(f"finished at step {result.step}; test metrics: {result.eval_metrics}")


if __name__ == "__main__":
  app.run(main)
