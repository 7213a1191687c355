"""A convolutional energy-based model on scikit-learn's 8x8 digits, p(x) = exp(-E(x)) / Z on
[0, 1]^64 over uniformly dequantized pixels, trained by maximum likelihood with persistent
Langevin chains in a replay buffer (IGEBM's recipe: 5 % of the chains restarted from noise each
step), 40 ULA steps of η = 1e-3 (noise √(2η), so the chains target exp(-E) up to the
discretisation), and a weak energy-magnitude regulariser α = 1e-3 (IGEBM's α = 1 would cap the
energy range, hence the likelihood).

Conv energy 32-64 (two stride-2 stages, swish); Adam 1e-3 with warm-up and cosine decay,
global batch 100, buffer 10,000, 2,000 steps. Evaluation: log Z by AIS from U[0, 1]^64 (100
chains, 10,000 temperatures, one MALA move each), the test NLL and bits/dim from it; FID/KID/
precision/recall of 1,000 fresh 200-step chains from noise and of 1,000 replay-buffer chains
in the digits classifier's features. Expected
results: README's EBM table (`python -m experiments.ebm --workdir=DIR
--config=experiments/configs/ebm_digits.py`). Variants: `:smoke`.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import common, ebm_2d


def image_config() -> ml_collections.ConfigDict:
  c = common.trainer_defaults()
  c.family = "ebm"
  c.data.transforms = ("uniform_dequantize",)
  c.model = ebm_2d.model_defaults()
  c.model.kind = "conv"
  ebm_2d.ebm_defaults(c)
  c.sampler.step_size = 1e-3
  c.loss.regularization = 1e-3
  c.eval.ais_temperatures = 10_000
  c.eval.num_samples = 1_000
  return c


def smoke(c):
  c.model.channels = (4,)
  c.train.buffer_size = 64
  c.sampler.num_steps = 3
  c.eval.ais_chains = 8
  c.eval.ais_temperatures = 5
  c.eval.sample_steps = 4
  c.eval.num_samples = 0
  common.tiny_run(c)
  c.optim.warmup_steps = 5
  c.eval.num_examples = 64


VARIANTS = {"smoke": smoke}


def get_config(arg: str = ""):
  c = image_config()
  c.data.name = "digits"
  c.train.batch_size = 100
  c.train.buffer_size = 10_000
  c.train.num_steps = 2_000
  c.train.checkpoint_every = 500
  c.train.sample_every = 1_000
  return common.apply_variants(c, arg, VARIANTS)
