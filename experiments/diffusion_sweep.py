r"""Sweeps a trained diffusion run's sampler: FID / KID (the dataset's classifier features)
and wall time per setting, written to `DIR/sweep_<name>.json` and a PNG.

  python -m experiments.diffusion_sweep --workdir=/tmp/runs/ddpm_mnist5k --sweep=ddim_steps
  python -m experiments.diffusion_sweep --workdir=/tmp/runs/cfg_digits --sweep=guidance

ddim_steps: DDIM (η = 0) with 10, 20, 50, 100 and 1000 steps (default values);
guidance:   guidance weight w = 0, 0.5, 1, 2, 4 with the run's sampler, plus a per-class grid
            of samples at each w.
Every setting draws the same `--num_samples` sample keys.
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from tqdm.auto import tqdm

from gen_jax.data import load_dataset
from gen_jax.keys import fold_in_indices
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import protocol
from gen_jax.tasks import diffusion
from gen_jax.training import plots, trainer
from gen_jax.training.workdir import read_config

GRID_PER_CLASS = 8  # guidance sweep: samples per class in each w's grid
SWEEPS = {
    "ddim_steps": {"field": "num_steps", "values": (10, 20, 50, 100, 1000),
                   "fixed": {"sampler": "ddim", "eta": 0.0}},
    "guidance": {"field": "guidance_weight", "values": (0.0, 0.5, 1.0, 2.0, 4.0), "fixed": {}},
}

FLAGS = flags.FLAGS


def define_flags():
  """The sweep's flags, defined only when it runs as a program (its functions are imported by
  tests next to other modules that own --workdir)."""
  flags.DEFINE_string("workdir", None, "A trained diffusion run's directory.", required=True)
  flags.DEFINE_enum("sweep", None, sorted(SWEEPS), "What to sweep.", required=True)
  flags.DEFINE_list("values", [], "Values to sweep (default: the sweep's own).")
  flags.DEFINE_integer("num_samples", 1000, "Samples per setting.")
  flags.DEFINE_integer("seed", 0, "Seed of the sample keys.")


def draw_timed(model, params, sample_config, key, num_samples: int, batch_size: int):
  """(samples in [0, 1], seconds spent sampling): sample i from fold_in(key, i), in batches of
  one compiled program (compiled before the clock starts)."""
  draw = jax.jit(lambda k: (model.sample(params, k, sample_config) + 1.0) / 2.0)
  batch_keys = lambda start: fold_in_indices(key, jnp.arange(start, start + batch_size))
  compiled = draw.lower(batch_keys(0)).compile()
  images, seconds = [], 0.0
  for start in tqdm(range(0, num_samples, batch_size), desc="sample", unit="batch", mininterval=2.0):
    keys = batch_keys(start)
    begin = time.perf_counter()
    images.append(np.asarray(jax.block_until_ready(compiled(keys))))
    seconds += time.perf_counter() - begin
  return np.concatenate(images)[:num_samples], seconds * num_samples / (len(images) * batch_size)


def run_sweep(workdir: str, sweep: str, values=(), num_samples: int = 1000, seed: int = 0) -> dict:
  spec = SWEEPS[sweep]
  config = read_config(workdir)
  if config.get("family") != "diffusion":
    raise ValueError(f"{workdir} holds a {config.get('family')!r} run; the sweep needs a diffusion run")
  dataset = load_dataset(config.data)
  model = diffusion.build_model(config, dataset)
  if sweep == "guidance" and not model.conditional:
    raise ValueError("the guidance sweep needs a class-conditional run (model.num_classes > 0)")
  task = diffusion.make_task(config, dataset)
  params, step = trainer.restore_params(task, config, workdir, dataset)
  values = [float(v) for v in values] or list(spec["values"])
  key = jax.random.key(seed)
  rows = []
  for value in values:
    settings = config.sample.to_dict()
    settings.update(spec["fixed"])
    settings[spec["field"]] = type(settings[spec["field"]])(value)
    sample_config = diffusion.SampleSettings(**settings)
    images, seconds = draw_timed(model, params, sample_config, key, num_samples,
                                 int(config.eval.sample_batch_size))
    net = feature_lib.feature_net(feature_lib.default_feature_net(dataset.name))
    metrics = protocol.image_quality(images, dataset, tuple(config.data.transforms), net, key,
                                     lambda x: (x + 1.0) / 2.0, data_seed=int(config.seed),
                                     data_dir=config.data.data_dir)
    seconds_per_sample = seconds / num_samples
    row = {spec["field"]: value, "seconds_per_sample": seconds_per_sample,
           **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}}
    rows.append(row)
    print(json.dumps(row), flush=True)
    if sweep == "guidance":
      diffusion.save_class_grid(model, params, key, GRID_PER_CLASS,
                                os.path.join(workdir, f"guidance_w{value:g}.png"), sample_config)
  result = {"sweep": sweep, "step": step, "num_samples": num_samples, "dataset": dataset.name,
            "device": jax.devices()[0].device_kind, "rows": rows}
  with open(os.path.join(workdir, f"sweep_{sweep}.json"), "w") as f:
    json.dump(result, f, indent=2)
  _plot(result, spec["field"], os.path.join(workdir, f"sweep_{sweep}.png"))
  return result


def _plot(result, field, path):
  plt = plots.pyplot()
  rows = result["rows"]
  fid_name = next(k for k in rows[0] if k.startswith("fid_"))
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot([r[field] for r in rows], [r[fid_name] for r in rows], "o-")
  if field == "num_steps":
    ax.set_xscale("log")
  ax.set_xlabel(field)
  ax.set_ylabel(fid_name)
  ax.set_title(f"{result['dataset']}: {fid_name} vs {field} ({result['num_samples']} samples)")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  run_sweep(FLAGS.workdir, FLAGS.sweep, FLAGS.values, FLAGS.num_samples, FLAGS.seed)


if __name__ == "__main__":
  define_flags()
  app.run(main)
