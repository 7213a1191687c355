"""Class-conditional DDPM on scikit-learn's 8x8 digits with classifier-free guidance (Ho &
Salimans 2022): labels dropped to ∅ with probability 0.1 in training; samples use
ε̃ = (1 + w) ε(x, c) − w ε(x, ∅) with DDIM-50.

U-Net 32 channels (×1, ×2 at 8 and 4 px), one residual block per level, attention at 4x4;
T = 1000 linear β, ε target, L_simple; Adam 1e-3, batch 64, 5,000 steps. The guidance sweep
(FID / KID with digits_cls features against w, and per-class grids) is
`python -m experiments.diffusion_sweep --workdir=DIR --sweep=guidance`. Expected result:
README diffusion table. Variant `:smoke`.
"""

from __future__ import annotations

from experiments.configs import common, diffusion


def smoke(c):
  diffusion.smoke(c)


def get_config(arg: str = ""):
  c = diffusion.base_config()
  diffusion.digits(c)
  c.model.num_classes = 10
  c.sample.guidance_weight = 1.0
  c.eval.bound_examples = 0  # 0: the whole test split
  c.eval.num_fid_samples = 1_000
  return common.apply_variants(c, arg, {"smoke": smoke})
