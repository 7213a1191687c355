r"""Launcher for deep belief nets (greedy layer-wise RBMs) with AIS-based likelihood bounds.

  python -m experiments.dbn --workdir=/tmp/dbn
"""

import json

from experiments import launch
from gen_jax.tasks import dbn

if __name__ == "__main__":
  launch.run(dbn.train_and_evaluate, "dbn.py", lambda result: json.dumps(result[1], indent=2))
