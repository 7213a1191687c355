r"""The log-density, in nats, of each row of an array under a trained run's model.

  python -m experiments.log_prob --workdir=/tmp/vae --input=x.npy --output=log_p.npy

Rows are in the data's own units (2-D points as the dataset gives them; images in [0, 1],
binary for models of binary images). The density is exact or the family's standard estimate,
named in a line on stderr (a VAE: the IWAE-k bound; an RBM: −F(v) − log Ẑ with AIS; a score
SDE: the probability-flow ODE; a DDPM or VDM: its variational bound). Row i draws any
randomness from fold_in(key(seed), i). A model without a density is an error.
"""

from __future__ import annotations

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from experiments import launch
from gen_jax.keys import fold_in_indices
from gen_jax.tasks import registry

# fold_in(key, i) keys row i; the once-per-call preparation (AIS) takes this stream instead.
PREPARE_STREAM = 2 ** 31 - 1


def load_rows(path: str) -> np.ndarray:
  if not os.path.exists(path):
    raise FileNotFoundError(f"--input={path} does not exist")
  try:
    x = np.load(path, allow_pickle=False)
  except ValueError as err:
    raise ValueError(f"--input={path} is not a .npy array ({launch.one_line(err)})") from None
  if not np.issubdtype(x.dtype, np.number) or not np.all(np.isfinite(x)):
    raise ValueError(f"--input={path} must hold finite numbers (dtype {x.dtype})")
  return x.astype(np.float32)


def log_prob_run(workdir: str, x: np.ndarray, seed: int = 0, batch_size: int = 100,
                 which: str = "ema_params"):
  """(log-densities (N,), the method's name)."""
  run = registry.load_run(workdir, which)
  density = run.task.density
  if density is None:
    raise ValueError(f"the {run.config.family} model {run.task.name!r} in {workdir} has no "
                     "density (log_prob needs a model with a likelihood or a bound)")
  shape = tuple(run.dataset.element_shape)
  if x.ndim < 1 or tuple(x.shape[1:]) != shape:
    raise ValueError(f"input rows have shape {tuple(x.shape[1:])} but this model's data have shape "
                     f"{shape}: give an array of shape (N, {', '.join(map(str, shape))})")
  density.check(x)
  model_x = np.asarray(density.to_model(x), np.float32)
  fn = jax.jit(density.fn)
  key = jax.random.key(seed)
  params = density.prepare(run.params, jax.random.fold_in(key, PREPARE_STREAM))
  out = []
  batch_size = min(batch_size, len(x))
  for start in range(0, len(x), batch_size):
    rows = np.arange(start, min(start + batch_size, len(x)))
    padded = np.concatenate([rows, np.full(batch_size - len(rows), rows[-1])])
    keys = fold_in_indices(key, jnp.asarray(padded, jnp.uint32))
    out.append(np.asarray(fn(params, model_x[padded], keys))[:len(rows)])
  return np.concatenate(out).astype(np.float64) + density.log_det(x), density.method


def main(argv):
  del argv
  f = flags.FLAGS
  log_p, method = log_prob_run(f.workdir, load_rows(f.input), f.seed, f.batch_size, f.params)
  os.makedirs(os.path.dirname(os.path.abspath(f.output)), exist_ok=True)
  np.save(f.output, log_p)
  print(f"log p(x) by {method}: mean {log_p.mean():.4f} nats over {len(log_p)} rows -> "
        f"{f.output}", file=sys.stderr)


if __name__ == "__main__":  # flags only as a program (tests import the module)
  flags.DEFINE_string("workdir", None, "The run's directory.", required=True)
  flags.DEFINE_string("input", None, "A .npy array, one example per row.", required=True)
  flags.DEFINE_string("output", None, "The .npy file to write (N,) log-densities to.", required=True)
  flags.DEFINE_integer("seed", 0, "Seed of any estimate's draws.")
  flags.DEFINE_integer("batch_size", 100, "Rows per compiled call.", lower_bound=1)
  flags.DEFINE_enum("params", "ema_params", ["ema_params", "params"], "Which parameters.")
  launch.run_tool(main)
