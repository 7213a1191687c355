r"""Hopfield capacity experiment: recall overlap against load P/N.

  python -m experiments.hopfield --workdir=/tmp/hopfield
"""

from experiments import launch
from gen_jax.tasks import hopfield


def describe(rows):
  return "\n".join(f"load {r['load']:.3f}: mean overlap {r['mean_overlap']:.3f}, "
                   f"retrieved {r['retrieved_fraction']:.2f}" for r in rows)


if __name__ == "__main__":
  launch.run(hopfield.train_and_evaluate, "hopfield.py", describe)
