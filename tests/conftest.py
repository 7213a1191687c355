"""Test setup: 8 emulated CPU devices (set before jax is imported) and one TFDS data dir."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
# One TFDS data dir per pytest-xdist worker, so that two workers never prepare the same dataset
# (or write the same reference-feature cache) at once.
_data_root = os.environ.get("TFDS_DATA_DIR", os.path.join(tempfile.gettempdir(), "gen_jax_test_tfds"))
os.environ["TFDS_DATA_DIR"] = os.path.join(_data_root, os.environ.get("PYTEST_XDIST_WORKER", "main"))
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402  (after XLA_FLAGS)



@pytest.fixture(scope="session")
def data_dir():
  return os.environ["TFDS_DATA_DIR"]
