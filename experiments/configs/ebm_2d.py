"""An energy-based model on 2-D points, p(x) = exp(-E(x)) / Z on the box [-L, L]² (L = 1.2 ×
the training data's largest |coordinate|), E an MLP 128-128 (swish); the exact test NLL (log Z
by quadrature on a 400² grid) beside the true density's (`data_nll`).

`train.negatives` picks how the model expectation of eq. 2.25 is estimated: replay (default:
persistent ULA chains in a buffer of 10,240, 5 % restarted from noise), short_run (chains from
U(box) each step), cd (chains from the data) — each 40 Langevin steps of η = 0.01 (ULA,
noise √(2η)), with the energy-magnitude regulariser α = 0.1 — or the likelihood-free dsm
(σ = 0.1) and ssm (one Rademacher projection). Adam 1e-3 with warm-up and cosine decay, global
batch 256, 10,000 steps. Expected results: README's EBM table (`python -m experiments.ebm
--workdir=DIR --config=experiments/configs/ebm_2d.py:<density> --config.train.negatives=<rule>`).
Variants: one per 2-D density (eight_gaussians by default, checkerboard, two_moons, ...) and
`:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common


def ebm_defaults(c: ml_collections.ConfigDict):
  """The fields every EBM config has: sampler, loss, negatives and evaluation settings."""
  c.train.negatives = "replay"       # replay | short_run | cd | dsm | ssm
  c.train.buffer_size = 10_240       # replay: chains kept (a multiple of the global batch)
  c.sampler = ml_collections.ConfigDict()
  c.sampler.name = "langevin"        # langevin | mala
  c.sampler.num_steps = 40           # MCMC steps per training step
  c.sampler.step_size = 0.01         # η
  c.sampler.noise_scale = 0.0        # 0: √(2η) (ULA); > 0: the seeds' σ set apart (biased)
  c.sampler.grad_clip = 0.0          # > 0: each chain's ∇E clipped to this norm (langevin)
  c.sampler.reinit_fraction = 0.05   # replay: chains restarted from noise per step
  c.loss = ml_collections.ConfigDict()
  c.loss.regularization = 0.1        # α of α (E(x)² + E(x⁻)²)
  c.loss.dsm_sigma = 0.1             # dsm: noise level
  c.loss.ssm_projections = 1         # ssm: Rademacher projections per example
  c.eval.sample_steps = 200          # fresh chains from noise for samples and figures
  c.eval.grid_size = 400             # 2-D: quadrature points per side
  c.eval.ais_chains = 100            # images: AIS
  c.eval.ais_temperatures = 1_000
  c.eval.ais_step_size = 1e-4
  c.eval.ais_chains_during_training = 0  # images: > 0 runs AIS at every evaluation, not only the last
  c.eval.num_samples = 0             # images: samples for FID/KID/precision/recall (0: none)
  c.eval.sample_batch_size = 250


def model_defaults() -> ml_collections.ConfigDict:
  m = ml_collections.ConfigDict()
  m.kind = "mlp"             # mlp | conv
  m.hidden_sizes = (128, 128)
  m.channels = (32, 64)      # conv
  m.box_margin = 1.2         # 2-D: the box's half-width over the data's largest |coordinate|
  return m


def smoke(c):
  c.model.hidden_sizes = (16,)
  c.train.buffer_size = 64
  c.sampler.num_steps = 5
  c.eval.grid_size = 50
  c.eval.sample_steps = 10
  common.points_smoke(c)


def get_config(arg: str = ""):
  c = common.points_config("ebm")
  c.model = model_defaults()
  c.train.num_steps = 10_000
  c.train.checkpoint_every = 2_500
  ebm_defaults(c)
  return common.apply_variants(c, arg, {**common.density_variants(), "smoke": smoke})
