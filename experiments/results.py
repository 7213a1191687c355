r"""Prints README's results table from the workdirs of documented runs.

  python -m experiments.results --runs_dir=/tmp/runs

Each row is a workdir holding config.json, metrics.jsonl and eval.json (runs that have
not finished are listed as such). The training time is the sum of the logged
intervals in metrics.jsonl (compilation included, evaluation excluded).
"""

from __future__ import annotations

import json
import os

from absl import app, flags

from gen_jax.training.writers import read_metrics

_RUNS_DIR = flags.DEFINE_string("runs_dir", "/tmp/runs", "Folder holding one workdir per run.")
# The documented runs: (workdir name, config argument, what the row is).
AUTOENCODER_RUNS = (
    ("ae", "experiments/configs/ae.py", "AE (Bernoulli)"),
    ("dae", "experiments/configs/dae.py", "DAE (salt-and-pepper 20 %)"),
    ("sae", "experiments/configs/sae.py", "SAE (ρ = 0.05, β = 1)"),
    ("vae", "experiments/configs/vae.py", "VAE"),
    ("iwae", "experiments/configs/iwae.py", "VAE trained with IWAE-5"),
    ("hvae", "experiments/configs/hvae.py", "Hierarchical VAE (2 levels)"),
)


def training_seconds(records) -> float:
  total, previous = 0.0, 0
  for record in records:
    if "steps_per_sec" in record and record["steps_per_sec"] > 0:
      total += (record["step"] - previous) / record["steps_per_sec"]
      previous = record["step"]
  return total


def autoencoder_row(runs_dir, name, config_arg, title):
  workdir = os.path.join(runs_dir, name)
  command = f"`python -m experiments.vae --workdir={workdir} --config={config_arg}`"
  eval_path = os.path.join(workdir, "eval.json")
  if not os.path.exists(eval_path):
    return f"| {title} | (not run) | | | | {command} |"
  with open(eval_path) as f:
    ev = json.load(f)
  records = read_metrics(workdir)
  nll_key = next((k for k in ev if k.startswith("nll_iwae") and not k.endswith("_bpd")), None)
  if nll_key:
    k = nll_key.removeprefix("nll_iwae")
    nll = f"{ev[nll_key]:.2f} (IWAE-{k})"
    elbo = f"{-ev['elbo']:.2f}"
  else:
    nll = f"{ev['recon_nll']:.2f} (reconstruction)"
    elbo = "—"
  minutes = training_seconds(records) / 60
  return (f"| {title} | {nll} | {elbo} | {ev['step']:,} | {minutes:.1f} min | {command} |")


def autoencoder_table(runs_dir) -> str:
  header = ("| model | test NLL, nats | test −ELBO, nats | steps | training time | command |\n"
            "|---|---|---|---|---|---|")
  rows = [autoencoder_row(runs_dir, *run) for run in AUTOENCODER_RUNS]
  return "\n".join([header, *rows])


def main(argv):
  del argv
  print(autoencoder_table(_RUNS_DIR.value))


if __name__ == "__main__":
  app.run(main)
