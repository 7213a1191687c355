r"""Launcher for sigmoid belief nets trained by wake-sleep.

  python -m experiments.sbn --workdir=/tmp/sbn
"""

from experiments import launch
from gen_jax.tasks import sbn

if __name__ == "__main__":
  launch.run(sbn.train_and_evaluate, "sbn.py")
