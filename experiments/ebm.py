r"""Launcher for energy-based models.

  python -m experiments.ebm --workdir=/tmp/ebm --config=experiments/configs/ebm_2d.py:two_moons \
      --config.train.negatives=short_run
"""

from experiments import launch
from gen_jax.tasks import ebm

if __name__ == "__main__":
  launch.run(ebm.train_and_evaluate, "ebm_2d.py")
