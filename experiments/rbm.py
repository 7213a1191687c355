r"""Launcher for RBMs (CD-k / PCD-k) with AIS log-likelihoods.

  python -m experiments.rbm --workdir=/tmp/rbm
"""

from experiments import launch
from gen_jax.tasks import rbm

if __name__ == "__main__":
  launch.run(rbm.train_and_evaluate, "rbm.py")
