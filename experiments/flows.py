r"""Launcher for normalizing flows.

  python -m experiments.flows --workdir=/tmp/flow --config=experiments/configs/flows_2d.py:checkerboard \
      --config.model.kind=maf
"""

from experiments import launch
from gen_jax.tasks import flows

if __name__ == "__main__":
  launch.run(flows.train_and_evaluate, "flows_2d.py")
