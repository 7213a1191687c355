r"""Launcher for Gaussian mixtures (EM, or the seed's gradient route).

  python -m experiments.mixtures --workdir=/tmp/gmm --config=experiments/configs/mixtures_2d.py:rings \
      --config.model.num_components=25
"""

from experiments import launch
from gen_jax.tasks import mixtures

if __name__ == "__main__":
  launch.run(mixtures.train_and_evaluate, "mixtures_2d.py")
