"""Variational diffusion with a learned SNR (Kingma et al. 2021) on scikit-learn's 8x8 digits.

γ_η(t): the monotone network with fixed end points γ(0) = −13.3, γ(1) = 5, trained to minimise
the variance of the diffusion-loss estimate; continuous-time bound (prior KL + reconstruction
+ diffusion) in bits/dim; the same U-Net as cfg_digits (unconditional); Adam 1e-3, batch 64,
5,000 steps; ancestral sampling with 200 steps. At the end: the bound on the whole test split
(16 (t, ε) draws per image) and FID/KID (digits_cls). Expected result: README diffusion
table (`python -m experiments.diffusion --workdir=DIR --config=experiments/configs/vdm_digits.py`).
Variants: `:fixed_gamma_gradient` (η trained on the bound itself, not its variance), `:smoke`.
"""

from __future__ import annotations

from experiments.configs import common, diffusion


def smoke(c):
  diffusion.smoke(c)
  c.model.gamma_hidden = 16


def plain_gradient(c):
  c.model.variance_gradient = False


def get_config(arg: str = ""):
  c = diffusion.base_config()
  diffusion.digits(c)
  c.model.process = "vdm"
  c.sample.sampler = "ancestral"
  c.sample.num_steps = 200
  c.eval.bound_examples = 0  # 0: the whole test split
  c.eval.num_fid_samples = 1_000
  return common.apply_variants(c, arg, {"smoke": smoke, "fixed_gamma_gradient": plain_gradient})
