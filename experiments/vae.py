r"""Launcher for the autoencoder family (AE, DAE, SAE, VAE, IWAE, HVAE).

  python -m experiments.vae --workdir=/tmp/vae
  python -m experiments.vae --workdir=/tmp/dae --config=experiments/configs/dae.py:smoke \
      --config.train.num_steps=100
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

from gen_jax.tasks import autoencoders

_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and samples.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_CONFIG_DIR, "vae.py"),
                                          "Experiment config file[:variant].", lock_config=True)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # Orbax and TFDS log every file operation at INFO.
  result = autoencoders.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  print(f"finished at step {result.step}; test metrics: {result.eval_metrics}")


if __name__ == "__main__":
  app.run(main)
