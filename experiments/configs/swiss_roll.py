"""The seeds' Figure 1: DDPM on the 2-D swiss roll with an MLP denoiser.

T = 1000 linear β, ε target, L_simple, Gaussian decoder; residual MLP (3 blocks of 256);
Adam 1e-3, batch 256, 10,000 steps. Writes `samples/final_trajectories.png` (forward slices,
reverse slices and the drift field at s = 0, T/2, T) and the bound on 1,000 test points in
nats. Expected result: README diffusion table (`python -m experiments.diffusion
--workdir=DIR --config=experiments/configs/swiss_roll.py`). Variant `:smoke` (T = 50).
"""

from __future__ import annotations

from experiments.configs import common, diffusion


def smoke(c):
  c.model.num_timesteps = 50
  c.model.mlp_hidden = 32
  common.tiny_run(c)
  c.optim.warmup_steps = 5
  c.eval.bound_examples = 64


def get_config(arg: str = ""):
  c = diffusion.base_config()
  diffusion.points_2d(c)
  c.data.name = "swiss_roll"
  c.model.decoder = "gaussian"
  c.sample.sampler = "ddpm"
  c.train.num_steps = 10_000
  c.eval.bound_examples = 1_000
  return common.apply_variants(c, arg, {"smoke": smoke})
