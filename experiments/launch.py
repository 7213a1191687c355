"""The shared body of every launcher: `--workdir`, `--config` (ml_collections, locked), the
multi-host flags, quiet logging unless -v is given, then the family's
`train_and_evaluate(config, workdir)`.

An expected error (a config typo, bad data, a mismatched or damaged checkpoint, a busy or
unwritable workdir, divergence) prints one line on stderr and exits with status 1; with
`-v` / `--verbosity=1` the traceback follows. A run stopped by SIGINT or SIGTERM saves its
state and exits with 130 or 143.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import sys
from typing import Any, Callable

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")

_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "Multi-host: HOST:PORT of process 0's coordinator.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: the number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's index.")


class UsageError(ValueError):
  """A command line the launcher cannot run."""


def expected_errors() -> tuple:
  """The errors a user can cause and fix; anything else is a bug and keeps its traceback."""
  from gen_jax.training.workdir import WorkdirInUseError
  return (ValueError, OSError, FloatingPointError, WorkdirInUseError)


def initialize_distributed():
  """With all three multi-host flags: gloo CPU collectives and jax.distributed.initialize,
  before anything else touches JAX's backends."""
  given = [f.value is not None for f in (_COORDINATOR, _NUM_PROCESSES, _PROCESS_ID)]
  if not any(given):
    return
  if not all(given):
    raise UsageError("--coordinator_address, --num_processes and --process_id go together: give "
                     "all three (multi-host) or none")
  import jax
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)


def summarize(result: Any) -> str:
  """A one-line account of what train_and_evaluate returned."""
  from gen_jax.training import TrainResult
  if isinstance(result, TrainResult):
    return f"finished at step {result.step}; test metrics: {result.eval_metrics}"
  return f"finished: {result}"


def load_config_file(spec: str):
  """`path[:variant]` -> the config as the file's get_config builds it (no overrides)."""
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_launched_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant) if variant else module.get_config()


def check_overrides(argv, config) -> None:
  """Raises a UsageError naming the first `--config.a.b=...` whose path the config lacks,
  with the fields it has and the closest match."""
  for arg in argv[1:]:
    if not arg.startswith("--config."):
      continue
    path = arg[len("--config."):].split("=", 1)[0]
    node, walked = config, "config"
    for part in path.split("."):
      fields = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      if part not in fields:
        close = difflib.get_close_matches(part, fields, n=1)
        hint = f"; did you mean {walked}.{close[0]}?" if close else f"; its fields: {sorted(fields)}"
        what = f"{walked} has no field {part!r}" if fields else f"{walked} is a value, not a section"
        raise UsageError(f"--config.{path}: {what}{hint}")
      node, walked = node[part], f"{walked}.{part}"


def one_line(err: BaseException) -> str:
  text = " ".join(str(err).split()) or type(err).__name__
  return text.strip("'\"")


def run(train_and_evaluate: Callable, default_config: str,
        describe: Callable[[Any], str] = summarize):
  """Defines the flags, then runs `train_and_evaluate` under absl."""
  workdir = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, samples).",
                                required=True)
  config = config_flags.DEFINE_config_file("config", os.path.join(CONFIG_DIR, default_config),
                                           "Experiment config file[:variant].", lock_config=True)

  def parse_flags(argv):
    """absl's parsing, with a config or flag error turned into one line on stderr."""
    try:
      return flags.FLAGS(argv)
    except Exception as err:  # noqa: BLE001 — every parsing error is the user's to fix
      if wants_traceback(argv):
        raise
      spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")),
                  os.path.join(CONFIG_DIR, default_config))
      print(f"error: {config_error(argv, spec, err)}", file=sys.stderr)
      sys.exit(1)

  def main(argv):
    if len(argv) > 1:
      raise UsageError(f"unexpected arguments: {argv[1:]}")
    initialize_distributed()
    print(describe(train_and_evaluate(config.value, workdir.value)))

  app.run(guarded(main), flags_parser=parse_flags)


def guarded(main: Callable) -> Callable:
  """main(argv) with the launchers' error handling: an expected error is one line on stderr
  and exit status 1 (the traceback with -v); a signal's `Interrupted` exits 130 or 143."""

  def wrapped(argv):
    verbose = flags.FLAGS["verbosity"].present
    if not verbose:
      logging.set_verbosity(logging.WARNING)  # Orbax and TFDS log every file operation at INFO.
    try:
      return main(argv)
    except Exception as err:  # noqa: BLE001 — sorted into expected and not below
      from gen_jax.training.trainer import Interrupted
      if isinstance(err, Interrupted):
        sys.exit(err.exit_code)
      if verbose or not isinstance(err, expected_errors()):
        raise
      print(f"error: {one_line(err)}", file=sys.stderr)
      sys.exit(1)
    except KeyboardInterrupt:  # a second Ctrl-C: checkpoints on disk are complete
      print("aborted: the newest complete checkpoint is kept; rerun the same command to resume",
            file=sys.stderr)
      sys.exit(130)

  return wrapped


def run_tool(main: Callable):
  """app.run for the non-training tools (evaluate, sample, log_prob), with `guarded`."""
  app.run(guarded(main))


def wants_traceback(argv) -> bool:
  return any(a == "-v" or a.startswith(("-v=", "--verbosity=", "--v=")) or a == "--verbosity"
             for a in argv)


def config_error(argv, spec: str, err: BaseException) -> str:
  """One line for a command line that absl could not parse: the config file's own error, the
  first override naming a missing field, or absl's last line."""
  if not os.path.exists(spec.partition(":")[0]):
    return f"--config={spec}: no such file"
  try:
    config = load_config_file(spec)
  except Exception as file_err:  # noqa: BLE001 — the config file's error is the message
    return f"--config={spec}: {one_line(file_err)}"
  try:
    check_overrides(argv, config)
  except UsageError as usage:
    return str(usage)
  lines = [line.strip() for line in str(err).splitlines() if line.strip()]
  return lines[-1] if lines else type(err).__name__
