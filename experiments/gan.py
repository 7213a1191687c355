r"""Launcher for GANs.

  python -m experiments.gan --workdir=/tmp/gan --config=experiments/configs/gan_2d.py:grid_of_gaussians \
      --config.gan.loss=hinge --config.gan.pack=2
"""

from experiments import launch
from gen_jax.tasks import gan

if __name__ == "__main__":
  launch.run(gan.train_and_evaluate, "gan_2d.py")
