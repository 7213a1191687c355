r"""Launcher for the autoencoder family (AE, DAE, SAE, VAE, IWAE, HVAE).

  python -m experiments.vae --workdir=/tmp/vae
  python -m experiments.vae --workdir=/tmp/dae --config=experiments/configs/dae.py:smoke \
      --config.train.num_steps=100
"""

from experiments import launch
from gen_jax.tasks import autoencoders

if __name__ == "__main__":
  launch.run(autoencoders.train_and_evaluate, "vae.py")
