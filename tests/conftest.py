"""Test setup: 8 emulated CPU devices (set before jax is imported) and one TFDS data dir."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TFDS_DATA_DIR", os.path.join(tempfile.gettempdir(), "gen_jax_test_tfds"))
os.environ.setdefault("TQDM_DISABLE", "1")

import pytest  # noqa: E402  (after XLA_FLAGS)



@pytest.fixture(scope="session")
def data_dir():
  return os.environ["TFDS_DATA_DIR"]
