r"""Launcher for deep belief nets (greedy layer-wise RBMs) with AIS-based likelihood bounds.

  python -m experiments.dbn --workdir=/tmp/dbn
"""

import json
import os

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.tasks import dbn

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory.", required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "dbn.py"),
    "Experiment config file[:variant].", lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  _, metrics = dbn.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
  app.run(main)
