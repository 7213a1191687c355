"""Test setup (before jax is imported): 4 emulated CPU devices, compiler settings that compile
fast, a TFDS data dir per pytest-xdist worker, and one compilation cache for the session."""

import atexit
import os
import shutil
import tempfile

# XLA's compiler settings for tests: the suite's time is mostly compilation (tiny shapes,
# thousands of distinct programs, each compiled once), not execution. LLVM's optimization level
# 1 and XLA's classic (non-MLIR) fusion emitters compile most programs faster. They compute the
# same functions, rounded differently in the last bits: the 17 :smoke runs agree with the
# default settings to float32 rounding (README, "Tests", has the measurements). Level 0 is not
# used: it made a resumed run's single steps round differently from the straight run's scanned
# steps. Launcher subprocesses inherit these flags (experiments.faults.xla_flags).
TEST_COMPILER_FLAGS = ("--xla_backend_optimization_level=1", "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = " ".join([os.environ.get("XLA_FLAGS", ""), *TEST_COMPILER_FLAGS,
                                    "--xla_force_host_platform_device_count=4"]).strip()
# One TFDS data dir per pytest-xdist worker, so that two workers never prepare the same dataset
# (or write the same reference-feature cache) at once.
_data_root = os.environ.get("TFDS_DATA_DIR", os.path.join(tempfile.gettempdir(), "gen_jax_test_tfds"))
os.environ["TFDS_DATA_DIR"] = os.path.join(_data_root, os.environ.get("PYTEST_XDIST_WORKER", "main"))
os.environ.setdefault("TQDM_DISABLE", "1")
# A persistent compilation cache for the session (one per worker, inherited by the launcher
# subprocesses): the many runs of the same :smoke configs compile the same programs again
# under new closures, and a hit skips XLA's compiler. Keys include the program and the
# compile options, so a hit cannot change a result.
# Made (and removed at exit) by the first process, the controller under xdist; the workers and
# subprocesses inherit it.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="gen_jax_test_xla_cache_")
  atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
# Every program, however small: the launcher subprocesses (faults, pods) would otherwise
# recompile each small eager op of the same run again.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # noqa: E402  (after XLA_FLAGS)



@pytest.fixture(scope="session")
def data_dir():
  return os.environ["TFDS_DATA_DIR"]
