r"""Launcher for the diffusion family (DDPM/DDIM, score SDEs, learned-SNR VDM).

  python -m experiments.diffusion --workdir=/tmp/ddpm
  python -m experiments.diffusion --workdir=/tmp/swiss --config=experiments/configs/swiss_roll.py
  python -m experiments.diffusion --workdir=/tmp/s --config=experiments/configs/diffusion.py:smoke
"""

from experiments import launch
from gen_jax.tasks import diffusion

if __name__ == "__main__":
  launch.run(diffusion.train_and_evaluate, "diffusion.py")
