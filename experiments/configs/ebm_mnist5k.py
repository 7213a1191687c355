"""A convolutional energy-based model on mnist5k (28x28), as ebm_digits.py with global batch 64,
buffer 6,400, 20 Langevin steps per training step (the chains persist, so fewer steps per
update still mix) and 400 steps; AIS over [0, 1]^784 with 20 chains and 2,000 temperatures, and
sample metrics of 500 fresh chains and 500 buffer chains (an evaluation that fits in minutes on
two cores). Expected results:
README's EBM table (`python -m experiments.ebm --workdir=DIR
--config=experiments/configs/ebm_mnist5k.py`). Variants: `:smoke` (on digits).
"""

from __future__ import annotations

from experiments.configs import common, ebm_digits


def smoke(c):
  ebm_digits.smoke(c)
  c.data.name = "digits"


def get_config(arg: str = ""):
  c = ebm_digits.image_config()
  c.data.name = "mnist5k"
  c.train.batch_size = 64
  c.train.buffer_size = 6_400
  c.train.num_steps = 400
  c.sampler.num_steps = 20
  c.eval.ais_chains = 20
  c.eval.ais_temperatures = 2_000
  c.eval.num_samples = 500
  c.train.checkpoint_every = 200
  c.train.sample_every = 200
  return common.apply_variants(c, arg, {"smoke": smoke})
