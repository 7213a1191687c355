r"""Hopfield capacity experiment: recall overlap against load P/N.

  python -m experiments.hopfield --workdir=/tmp/hopfield
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.tasks import hopfield

_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(__file__), "configs", "hopfield.py"),
    "Experiment config file[:variant].", lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  for row in hopfield.train_and_evaluate(_CONFIG.value, _WORKDIR.value):
    print(f"load {row['load']:.3f}: mean overlap {row['mean_overlap']:.3f}, "
          f"retrieved {row['retrieved_fraction']:.2f}")


if __name__ == "__main__":
  app.run(main)
