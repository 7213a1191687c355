r"""Fault injection through the real launcher, each case in a subprocess, as a new user would
meet it: signals at random moments (in training, during a checkpoint write, during the final
evaluation), SIGKILL mid-save, damaged checkpoints, a leftover temporary checkpoint, two runs in
one workdir, divergence, and bad input.

  python -m experiments.faults --workdir=/tmp/faults [--signal_trials=20] [--readme=README.md]

Every case must end one of two ways: a rerun of the same command that ends bit-identical to an
uninterrupted run (metrics, eval.json and parameters), or a one-line error (exit status 1) with
the workdir byte-identical except for the files the message names. The table of cases (with
`--readme`, between README's `faults` markers) counts both.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
from typing import Callable

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
# The run every case starts from: the VAE smoke config, long enough to be interrupted.
RUN_FLAGS = ("--config=experiments/configs/vae.py:smoke", "--config.train.num_steps=300",
             "--config.train.log_every=10", "--config.train.checkpoint_every=50",
             "--config.train.sample_every=0", "--config.eval.iwae_samples=20",
             "--config.eval.iwae_chunk_size=20")
SIGNALS = (signal.SIGINT, signal.SIGTERM)
MOMENTS = ("training", "checkpoint write", "evaluation")


@dataclasses.dataclass
class Outcome:
  case: str
  expected: str                 # "resume" or "error"
  ok: bool
  detail: str = ""
  steps_redone: int = 0         # finished steps a resumed run had to train again
  bytes_lost: int = 0           # bytes of the workdir destroyed (moved aside is not lost)


DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def xla_flags(devices: int) -> str:
  """This process's XLA_FLAGS (compiler settings carry over) with `devices` emulated CPU devices."""
  kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
  return " ".join(kept + [f"{DEVICE_COUNT_FLAG}={devices}"])


def launcher(workdir, *flags, program: str = "vae", devices: int = 1):
  """`python -m experiments.<program> --workdir=...` (a family's launcher or a tool such as
  `sample`) in a subprocess on `devices` emulated CPU devices."""
  env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1", "XLA_FLAGS": xla_flags(devices)}
  return subprocess.Popen([sys.executable, "-m", f"experiments.{program}", f"--workdir={workdir}",
                           *flags], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def complete(process, timeout: float = 900):
  out, err = process.communicate(timeout=timeout)
  return process.returncode, out, err


def run(workdir, *flags, **kwargs):
  return complete(launcher(workdir, *flags, **kwargs))


def snapshot(directory) -> dict:
  directory = pathlib.Path(directory)
  if not directory.exists():
    return {}
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def wait_for(predicate: Callable[[], bool], timeout: float = 300, interval: float = 0.001) -> bool:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    time.sleep(interval)
  return False


def in_checkpoint_write(workdir) -> bool:
  checkpoints = pathlib.Path(workdir) / "checkpoints"
  return checkpoints.exists() and any("tmp" in p.name for p in checkpoints.iterdir())


def final_state(workdir):
  """(metrics rows without timings, eval.json, the final parameters as numpy)."""
  import jax
  from gen_jax.data import load_dataset
  from gen_jax.tasks import registry
  from gen_jax.training import restore_params
  from gen_jax.training.workdir import read_config
  from gen_jax.training.writers import read_metrics
  config = read_config(str(workdir))
  dataset = load_dataset(config.data)
  task = registry.FAMILIES[config.family].make_task(config, dataset)
  params, step = restore_params(task, config, str(workdir), dataset, "params")
  rows = [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in read_metrics(workdir)]
  evaluation = json.loads((pathlib.Path(workdir) / "eval.json").read_text())
  return rows, evaluation, jax.device_get(params), step


def identical(workdir, reference) -> str:
  """"" when `workdir` ended exactly as `reference`, else what differs."""
  import jax
  a, b = final_state(workdir), final_state(reference)
  if a[3] != b[3]:
    return f"final step {a[3]} != {b[3]}"
  if a[0] != b[0]:
    return "metrics.jsonl differs"
  if a[1] != b[1]:
    return "eval.json differs"
  same = jax.tree.map(lambda x, y: bool(np.array_equal(x, y)), a[2], b[2])
  return "" if all(jax.tree.leaves(same)) else "parameters differ"


def one_line_error(code: int, err: str) -> str:
  """"" when the process failed with exactly one line on stderr, else what was wrong."""
  lines = [line for line in err.splitlines() if line.strip()]
  if code != 1:
    return f"exit status {code}"
  if len(lines) != 1 or not lines[0].startswith("error: "):
    return f"{len(lines)} lines on stderr: {lines[-1][:200] if lines else ''}"
  return ""


def resumed_step(out: str) -> int:
  marker = "resuming from step "
  return int(out.split(marker)[1].split()[0]) if marker in out else 0


# ---------------------------------------------------------------- cases that resume


def signal_trial(workdir, reference, trial: int, seconds: float) -> Outcome:
  """SIGINT or SIGTERM at a moment of trial's kind: a random time in training, the first
  checkpoint write, or the final evaluation; then the same command again."""
  signum, moment = SIGNALS[trial % 2], MOMENTS[trial % 3]
  name = f"SIGINT or SIGTERM during {moment}"
  rng = np.random.default_rng(trial)
  process = launcher(workdir, *RUN_FLAGS)
  metrics = pathlib.Path(workdir) / "metrics.jsonl"
  if moment == "training":
    wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0)
    time.sleep(rng.uniform(0.0, 0.5 * seconds))
  elif moment == "checkpoint write":
    wait_for(lambda: in_checkpoint_write(workdir) or process.poll() is not None)
  else:
    wait_for(lambda: (pathlib.Path(workdir) / "checkpoints" / "300").exists() or process.poll() is not None)
  landed = moment if process.poll() is None else "after the run ended"
  process.send_signal(signum)
  code, out, err = complete(process)
  if code not in (0, 130, 143):
    return Outcome(name, "resume", False, f"exit status {code}: {err.strip()[-300:]}")
  saved = int(out.split("saved checkpoint at step ")[1].split(";")[0]) if "saved checkpoint" in out else None
  code, out, err = run(workdir, *RUN_FLAGS)
  if code != 0:
    return Outcome(name, "resume", False, f"rerun exit status {code}: {err.strip()[-300:]}")
  redone = 0 if saved is None else saved - resumed_step(out)
  differs = identical(workdir, reference)
  return Outcome(name, "resume", not differs and redone == 0,
                 differs or f"{signal.Signals(signum).name} landed {landed}", redone)


def sigkill_mid_save(workdir, reference) -> Outcome:
  killed = False
  for _ in range(5):
    process = launcher(workdir, *RUN_FLAGS)
    wait_for(lambda: in_checkpoint_write(workdir) or process.poll() is not None)
    process.kill()
    process.communicate()
    killed = in_checkpoint_write(workdir)
    if killed:
      break
  code, out, err = run(workdir, *RUN_FLAGS)
  if code != 0:
    return Outcome("SIGKILL during a checkpoint write", "resume", False, err.strip()[-300:])
  differs = identical(workdir, reference)
  leftover = in_checkpoint_write(workdir)
  return Outcome("SIGKILL during a checkpoint write", "resume", killed and not differs and not leftover,
                 differs or ("temporary directory left" if leftover else "") or
                 ("" if killed else "no kill landed mid-write"))


def stopped_run(workdir):
  """A run stopped by SIGTERM after its second checkpoint (steps 50 and 100 on disk)."""
  process = launcher(workdir, *RUN_FLAGS)
  wait_for(lambda: (pathlib.Path(workdir) / "checkpoints" / "100").exists() or process.poll() is not None)
  process.send_signal(signal.SIGTERM)
  complete(process)


def damaged_checkpoint(workdir, reference, damage: str) -> Outcome:
  """The newest checkpoint damaged (a truncated data file, garbage metadata, emptied
  manifests): the rerun moves it aside, resumes from the previous one and ends identical."""
  stopped_run(workdir)
  checkpoints = pathlib.Path(workdir) / "checkpoints"
  newest = max((p for p in checkpoints.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
  default = newest / "default"
  if damage == "truncated data file":
    data = max((default / "ocdbt.process_0" / "d").iterdir(), key=lambda p: p.stat().st_size)
    with open(data, "r+b") as f:
      f.truncate(data.stat().st_size // 2)
  elif damage == "corrupt metadata":
    (default / "_METADATA").write_text("{ not json")
  else:
    for manifest in default.rglob("manifest.ocdbt"):
      manifest.write_bytes(b"")
  damaged = sum(p.stat().st_size for p in newest.rglob("*") if p.is_file())
  code, out, err = run(workdir, *RUN_FLAGS)
  name = f"{damage} in the newest checkpoint"
  if code != 0:
    return Outcome(name, "resume", False, err.strip()[-300:])
  aside = list((pathlib.Path(workdir) / "corrupt_checkpoints").glob(f"{newest.name}-*"))
  kept = sum(p.stat().st_size for d in aside for p in d.rglob("*") if p.is_file())
  warned = f"checkpoint {newest.name} is damaged" in out
  differs = identical(workdir, reference)
  # Bytes lost: what the damaged checkpoint held (after the damage) and the rescue dropped.
  return Outcome(name, "resume", warned and not differs and bool(aside),
                 differs or ("" if warned else "no warning"), int(newest.name) - resumed_step(out),
                 max(0, damaged - kept))


def leftover_temporary_checkpoint(workdir, reference) -> Outcome:
  stopped_run(workdir)
  tmp = pathlib.Path(workdir) / "checkpoints" / "150.orbax-checkpoint-tmp-1234567890"
  (tmp / "default").mkdir(parents=True)
  (tmp / "default" / "partial").write_bytes(b"\0" * 1024)
  code, _, err = run(workdir, *RUN_FLAGS)
  if code != 0:
    return Outcome("leftover temporary checkpoint", "resume", False, err.strip()[-300:])
  differs = identical(workdir, reference)
  return Outcome("leftover temporary checkpoint", "resume", not differs and not tmp.exists(),
                 differs or ("left in place" if tmp.exists() else "cleaned"))


def concurrent_runs(workdir, reference) -> Outcome:
  first = launcher(workdir, *RUN_FLAGS)
  wait_for(lambda: (pathlib.Path(workdir) / ".lock").exists())
  code, _, err = run(workdir, *RUN_FLAGS)
  refused = one_line_error(code, err)
  first_code, _, first_err = complete(first)
  if first_code != 0:
    return Outcome("two runs in one workdir", "error", False, first_err.strip()[-300:])
  differs = identical(workdir, reference)
  return Outcome("two runs in one workdir", "error", not refused and not differs,
                 refused or differs or err.strip())


# ---------------------------------------------------------------- cases that refuse


def divergence(workdir, after_checkpoint: bool) -> Outcome:
  """A learning rate that diverges before or after the first checkpoint: a one-line error
  that names the real state; before any checkpoint, a rerun with a lower learning rate in the
  same workdir is not blocked."""
  # At learning rate 1e12 the first update makes the second step's loss non-finite; checkpoints
  # every step put the first one before that, every 10 steps after it.
  flags = RUN_FLAGS + ("--config.optim.grad_clip_norm=0", "--config.optim.warmup_steps=0",
                       "--config.optim.learning_rate=1e12",
                       f"--config.train.checkpoint_every={1 if after_checkpoint else 10}")
  name = f"divergence {'after' if after_checkpoint else 'before'} the first checkpoint"
  code, _, err = run(workdir, *flags)
  problem = one_line_error(code, err)
  if problem:
    return Outcome(name, "error", False, problem)
  has_checkpoint = "the last good checkpoint is step" in err
  if has_checkpoint != after_checkpoint:
    return Outcome(name, "error", False, f"diverged {'after' if has_checkpoint else 'before'} "
                   f"a checkpoint: {err.strip()}")
  if not after_checkpoint:
    code, _, rerun_err = run(workdir, *RUN_FLAGS[:1], "--config.train.num_steps=20",
                             "--config.eval.iwae_samples=0")
    if code != 0:
      return Outcome(name, "error", False, f"the rerun was blocked: {rerun_err.strip()[-300:]}")
  return Outcome(name, "error", True, err.strip())


BAD_INPUTS = {  # name -> (flags, how to prepare the workdir)
    "config typo": (("--config.train.num_stpes=5",), "fresh"),
    "wrong parent name": (("--config.rbm.num_hidden=5",), "fresh"),
    "unknown config variant": (("--config=experiments/configs/vae.py:smok",), "fresh"),
    "unknown dataset": (("--config.data.name=mnsit",), "fresh"),
    "batch not divisible by the devices": (("--config.train.batch_size=30",), "fresh"),
    "workdir is a file": ((), "file"),
    "workdir not writable": ((), "unwritable"),
    "workdir of another config": (("--config.model.latent_dim=12",), "trained"),
    "checkpoint of another model": (("--config.model.latent_dim=12",), "swapped_config"),
    "data outside the likelihood's range": (("--config.data.transforms=()",), "fresh"),
}


def bad_input(root, name: str, trained) -> Outcome:
  flags, preparation = BAD_INPUTS[name]
  root = pathlib.Path(root)
  workdir = root / "workdir"
  if preparation == "file":
    workdir.write_text("not a directory")
  elif preparation == "unwritable":
    workdir = pathlib.Path("/sys/gen_jax_fault_case")  # a read-only file system, even for root
  elif preparation in ("trained", "swapped_config"):
    shutil.copytree(trained, workdir)
    if preparation == "swapped_config":
      config = json.loads((workdir / "config.json").read_text())
      config["model"]["latent_dim"] = 12
      (workdir / "config.json").write_text(json.dumps(config))
  before = snapshot(workdir) if workdir.is_dir() else None
  base = RUN_FLAGS[:1] if not any(f.startswith("--config=") for f in flags) else ()
  devices = 4 if "batch_size=30" in " ".join(flags) else 1
  code, _, err = run(workdir, *base, *flags, devices=devices)
  problem = one_line_error(code, err)
  after = snapshot(workdir) if workdir.is_dir() else None
  if preparation == "fresh" and workdir.exists():
    problem = problem or "the refused run created the workdir"
  elif before is not None and after != before:
    problem = problem or "the refused run changed the workdir"
  return Outcome(f"bad input: {name}", "error", not problem, problem or err.strip())


# ---------------------------------------------------------------- the table


def table(outcomes) -> str:
  groups = {}
  for o in outcomes:
    groups.setdefault(o.case, []).append(o)
  rows = ["| case | tries | expected | clean one-line errors | identical resumes | steps redone | bytes lost |",
          "|---|---|---|---|---|---|---|"]
  for case, group in groups.items():
    errors = sum(o.ok for o in group if o.expected == "error")
    resumes = sum(o.ok for o in group if o.expected == "resume")
    rows.append(f"| {case} | {len(group)} | {group[0].expected} | "
                f"{errors if group[0].expected == 'error' else '—'} | "
                f"{resumes if group[0].expected == 'resume' else '—'} | "
                f"{sum(o.steps_redone for o in group)} | {sum(o.bytes_lost for o in group)} |")
  total = len(outcomes)
  rows.append(f"| **all** | {total} | | {sum(o.ok for o in outcomes if o.expected == 'error')} of "
              f"{sum(o.expected == 'error' for o in outcomes)} | "
              f"{sum(o.ok for o in outcomes if o.expected == 'resume')} of "
              f"{sum(o.expected == 'resume' for o in outcomes)} | "
              f"{sum(o.steps_redone for o in outcomes)} | {sum(o.bytes_lost for o in outcomes)} |")
  return "\n".join(rows)


def main(argv):
  from absl import flags, logging
  del argv
  logging.set_verbosity(logging.WARNING)
  root = pathlib.Path(flags.FLAGS.workdir)
  shutil.rmtree(root, ignore_errors=True)
  root.mkdir(parents=True)
  started = time.perf_counter()
  code, _, err = run(root / "reference", *RUN_FLAGS)
  assert code == 0, err
  seconds = time.perf_counter() - started
  outcomes = []

  def record(outcome):
    outcomes.append(outcome)
    print(f"{'ok  ' if outcome.ok else 'FAIL'} {outcome.case}: {outcome.detail[:160]}", flush=True)

  for trial in range(flags.FLAGS.signal_trials):
    record(signal_trial(root / f"signal_{trial}", root / "reference", trial, seconds))
  record(sigkill_mid_save(root / "sigkill", root / "reference"))
  for damage in ("truncated data file", "corrupt metadata", "emptied manifest"):
    record(damaged_checkpoint(root / damage.replace(" ", "_"), root / "reference", damage))
  record(leftover_temporary_checkpoint(root / "leftover_tmp", root / "reference"))
  record(concurrent_runs(root / "concurrent", root / "reference"))
  record(divergence(root / "diverge_before", False))
  record(divergence(root / "diverge_after", True))
  for name in BAD_INPUTS:
    (root / name.replace(" ", "_")).mkdir()
    record(bad_input(root / name.replace(" ", "_"), name, root / "reference"))
  text = table(outcomes)
  print(text)
  if flags.FLAGS.readme:
    readme = pathlib.Path(flags.FLAGS.readme)
    content = readme.read_text()
    start, end = "<!-- faults:start -->", "<!-- faults:end -->"
    head, rest = content.split(start)
    readme.write_text(f"{head}{start}\n{text}\n{end}{rest.split(end, 1)[1]}")


if __name__ == "__main__":
  from absl import app, flags
  flags.DEFINE_string("workdir", "/tmp/gen_jax_faults", "Where the cases run.")
  flags.DEFINE_integer("signal_trials", 20, "SIGINT/SIGTERM trials.")
  flags.DEFINE_string("readme", "", "README to write the table into (between faults markers).")
  app.run(main)
