r"""Launcher for deep Boltzmann machines (mean-field + persistent chains, AIS).

  python -m experiments.dbm --workdir=/tmp/dbm
"""

from experiments import launch
from gen_jax.tasks import dbm

if __name__ == "__main__":
  launch.run(dbm.train_and_evaluate, "dbm.py")
