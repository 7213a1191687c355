"""Score SDE (VP, β ∈ [0.1, 20]) on 8 gaussians with an MLP ε-network; test log-likelihood
from the probability-flow ODE (exact divergence, 200 RK4 steps) on 2,000 test points.

The best possible test NLL is the data entropy: ≈ 2.84 nats for 8 gaussians, ln 32 ≈ 3.47
nats for the checkerboard; eval.json also holds the true NLL of the same test points
(`ode_data_nll`). Residual MLP (3 blocks of 256), Adam 1e-3, batch 256, 20,000 steps.
Expected result: README diffusion table (`python -m experiments.diffusion --workdir=DIR
--config=experiments/configs/ode_2d.py[:checkerboard]`). Variants: `:checkerboard`, `:smoke`.
"""

from __future__ import annotations

from experiments.configs import common, diffusion


def checkerboard(c):
  c.data.name = "checkerboard"


def smoke(c):
  c.model.mlp_hidden = 32
  common.tiny_run(c)
  c.optim.warmup_steps = 5
  c.eval.likelihood_examples = 64
  c.eval.ode_steps = 20
  c.sample.num_steps = 20


def get_config(arg: str = ""):
  c = diffusion.base_config()
  diffusion.points_2d(c)
  c.data.name = "eight_gaussians"
  c.model.process = "sde"
  c.sample.sampler = "ode"
  c.sample.num_steps = 200
  c.train.num_steps = 20_000
  return common.apply_variants(c, arg, {"checkerboard": checkerboard, "smoke": smoke})
