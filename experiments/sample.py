r"""Draws samples from a trained run of any family that samples.

  python -m experiments.sample --workdir=/tmp/vae --num_samples=1000 --output=/tmp/samples.npz

Sample i is drawn from fold_in(key(seed), i), so the samples do not depend on --batch_size or
the device count. The file holds `samples`, shaped (N, *event_shape), in the data's own units
(2-D points as the dataset gives them; images in [0, 1]). `--temperature=T` scales a flow's
base noise, z ~ N(0, T² I) (Glow's reduced-temperature samples).
"""

from __future__ import annotations

import os
import sys

import jax
import numpy as np
from absl import flags

from experiments import launch
from gen_jax.metrics.protocol import draw_samples
from gen_jax.tasks import registry


def sample_run(workdir: str, num_samples: int, seed: int = 0, batch_size: int = 250,
               which: str = "ema_params", temperature: float = 1.0) -> np.ndarray:
  run = registry.load_run(workdir, which)
  if run.task.sample is None:
    raise ValueError(f"the {run.config.family} model {run.task.name!r} in {workdir} does not "
                     "sample (it defines no generative distribution)")
  draw = lambda keys: run.task.sample(run.params, keys)
  if temperature != 1.0:
    if run.task.sample_at_temperature is None:
      raise ValueError(f"--temperature={temperature}: the {run.config.family} model "
                       f"{run.task.name!r} has no base temperature; leave --temperature at 1")
    draw = lambda keys: run.task.sample_at_temperature(run.params, keys, temperature)
  return draw_samples(draw, jax.random.key(seed), num_samples, min(batch_size, num_samples))


def main(argv):
  del argv
  f = flags.FLAGS
  if not f.output.endswith(".npz"):
    raise launch.UsageError(f"--output={f.output} must name a .npz file")
  samples = sample_run(f.workdir, f.num_samples, f.seed, f.batch_size, f.params, f.temperature)
  os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
  np.savez(f.output, samples=samples)
  print(f"wrote {len(samples)} samples of shape {samples.shape[1:]} to {f.output}", file=sys.stderr)


if __name__ == "__main__":  # flags only as a program (tests import the module)
  flags.DEFINE_string("workdir", None, "The run's directory.", required=True)
  flags.DEFINE_integer("num_samples", None, "How many samples.", required=True, lower_bound=1)
  flags.DEFINE_string("output", None, "The .npz file to write.", required=True)
  flags.DEFINE_integer("seed", 0, "Seed of the draws.")
  flags.DEFINE_integer("batch_size", 250, "Samples per compiled call.", lower_bound=1)
  flags.DEFINE_enum("params", "ema_params", ["ema_params", "params"], "Which parameters.")
  flags.DEFINE_float("temperature", 1.0, "Scale of the base noise (flows; 1 samples the model).",
                     lower_bound=0.0)
  launch.run_tool(main)
