r"""Launcher for autoregressive models.

  python -m experiments.autoregressive --workdir=/tmp/ar \
      --config=experiments/configs/autoregressive_mnist5k.py --config.model.kind=made
"""

from experiments import launch
from gen_jax.tasks import autoregressive

if __name__ == "__main__":
  launch.run(autoregressive.train_and_evaluate, "autoregressive_mnist5k.py")
