"""A convolutional energy-based model on mnist5k (28x28), as ebm_digits.py with global batch 64,
buffer 6,400, 400 steps, and IGEBM's sampler instead of ULA: the seeds' Algorithm 1 with the
noise set apart, 20 steps of η = 1 with σ = 0.005 (biased: it samples a colder law than
exp(-E), see README; with ULA at η = 1e-3 in 784 dimensions the chains stayed noise and the
energy gap grew to about -1,000 by step 200); AIS over [0, 1]^784 with 20 chains and 2,000
temperatures, and sample metrics of 500 fresh chains and 500 buffer chains (an evaluation that
fits in minutes on two cores). Expected results: README's EBM table (`python -m experiments.ebm
--workdir=DIR --config=experiments/configs/ebm_mnist5k.py`). Variants: `:smoke` (on digits).
"""

from __future__ import annotations

from experiments.configs import common, ebm_digits


def get_config(arg: str = ""):
  c = ebm_digits.image_config()
  c.data.name = "mnist5k"
  c.train.batch_size = 64
  c.train.buffer_size = 6_400
  c.train.num_steps = 400
  c.sampler.num_steps = 20
  c.sampler.step_size = 1.0
  c.sampler.noise_scale = 0.005
  c.eval.ais_chains = 20
  c.eval.ais_temperatures = 2_000
  c.eval.num_samples = 500
  c.train.checkpoint_every = 200
  c.train.sample_every = 200
  return common.apply_variants(c, arg, {"smoke": common.smoke_on_digits(ebm_digits.smoke)})
