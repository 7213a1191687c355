"""The Hopfield capacity experiment: recall overlap against load α = P/N.

For each load, P random ±1 patterns are stored with the Hebbian rule; recall starts from
each stored pattern with a fraction of its bits flipped and runs asynchronous sweeps. The
final overlap m = xᵀξ/N collapses near α_c ≈ 0.138 (Amit, Gutfreund & Sompolinsky 1985).
Writes capacity.png, results.json and metrics.jsonl (one record per load) into the workdir.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gen_jax.boltzmann import hopfield
from gen_jax.keys import bernoulli
from gen_jax.training import plots
from gen_jax.training.writers import MetricWriter

CRITICAL_LOAD = 0.138
RETRIEVED_OVERLAP = 0.9


def run_load(num_units, num_patterns, key, flip_fraction, num_sweeps, num_probes):
  """Mean final overlap and the fraction of probes retrieved (m > 0.9) at one load."""
  key_patterns, key_flips, key_recall = jax.random.split(key, 3)
  patterns = jnp.where(bernoulli(key_patterns, 0.5, (num_patterns, num_units)), 1.0, -1.0)
  W = hopfield.hebbian_weights(patterns)
  targets = patterns[: min(num_probes, num_patterns)]
  flips = bernoulli(key_flips, flip_fraction, targets.shape)
  final = hopfield.recall(W, jnp.where(flips, -targets, targets), key_recall, num_sweeps)
  m = jnp.sum(final * targets, axis=1) / num_units
  return float(jnp.mean(m)), float(jnp.mean(m > RETRIEVED_OVERLAP))


def train_and_evaluate(config, workdir: str):
  os.makedirs(workdir, exist_ok=True)
  n = int(config.num_units)
  loads = np.round(np.arange(config.min_load, config.max_load + 1e-9, config.load_step), 4)
  root = jax.random.key(int(config.seed))
  writer = MetricWriter(workdir)
  rows = []
  for i, load in enumerate(tqdm(loads, desc="loads", unit="load")):
    num_patterns = max(1, int(round(load * n)))
    overlaps, retrieved = zip(*(run_load(n, num_patterns, jax.random.fold_in(jax.random.fold_in(root, i), t),
                                         float(config.flip_fraction), int(config.num_sweeps),
                                         int(config.num_probes))
                                for t in range(int(config.num_trials))))
    row = {"load": float(num_patterns / n), "num_patterns": num_patterns,
           "mean_overlap": float(np.mean(overlaps)), "overlap_std": float(np.std(overlaps)),
           "retrieved_fraction": float(np.mean(retrieved))}
    rows.append(row)
    writer.write(i, row)
  writer.close()
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(6, 4))
  x = [r["load"] for r in rows]
  ax.errorbar(x, [r["mean_overlap"] for r in rows], yerr=[r["overlap_std"] for r in rows],
              marker="o", ms=3, label="mean final overlap m")
  ax.plot(x, [r["retrieved_fraction"] for r in rows], marker="s", ms=3,
          label=f"fraction retrieved (m > {RETRIEVED_OVERLAP})")
  ax.axvline(CRITICAL_LOAD, color="k", ls="--", lw=1, label="α_c ≈ 0.138")
  ax.set_xlabel("load α = P / N")
  ax.set_ylabel("overlap")
  ax.set_title(f"Hopfield recall, N = {n}, {config.flip_fraction:.0%} of bits flipped at start")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "capacity.png"), dpi=120)
  plt.close(fig)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"num_units": n, "rows": rows}, f, indent=2)
  return rows
