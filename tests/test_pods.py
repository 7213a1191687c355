"""Pods and preemption through the real launcher: 2 processes × 2 devices equal 1 process × 4
devices (and 1 device); FSDP slices the large weights and keeps the losses; SIGTERM mid-run and
SIGKILL mid-save both resume to the bit-identical result of an uninterrupted run."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import chex
import jax
import numpy as np
import pytest

from experiments.configs import vae as vae_config
from gen_jax.data import load_dataset
from gen_jax.tasks import autoencoders
from gen_jax.training import restore_params, setup
from gen_jax.training.sharding import FSDP_MIN_SIZE
from gen_jax.training.workdir import read_config
from gen_jax.training.writers import read_metrics
from tests.helpers import with_overrides

REPO = pathlib.Path(__file__).resolve().parents[1]
SMOKE = ("--config=experiments/configs/vae.py:smoke", "--config.eval.iwae_samples=0")


def launcher_env(devices: int) -> dict:
  return {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
          "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}


def start(workdir, *flags, devices=1):
  return subprocess.Popen([sys.executable, "-m", "experiments.vae", f"--workdir={workdir}", *flags],
                          cwd=REPO, env=launcher_env(devices), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)


def finish(process, timeout=600):
  out, err = process.communicate(timeout=timeout)
  return process.returncode, out, err


def losses(workdir):
  return [(r["step"], r["loss"], r["kl"]) for r in read_metrics(workdir) if "loss" in r]


def final_params(workdir):
  config = read_config(str(workdir))
  dataset = load_dataset(config.data)
  params, step = restore_params(autoencoders.make_task(config, dataset), config, str(workdir), dataset,
                                "params")
  return jax.device_get(params), step


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_hosts_of_two_devices_equal_one_host_of_four_and_one_device(tmp_path):
  address = f"127.0.0.1:{free_port()}"
  hosts = [start(tmp_path / "hosts", *SMOKE, f"--coordinator_address={address}", "--num_processes=2",
                 f"--process_id={i}", devices=2) for i in range(2)]
  # Four devices, 4 steps a call: the stacked batches are split over the devices too.
  four = start(tmp_path / "four", *SMOKE, "--config.train.steps_per_call=4", devices=4)
  for process in hosts + [four]:
    code, _, err = finish(process)
    assert code == 0, err[-3000:]
  one = start(tmp_path / "one", *SMOKE, devices=1)
  code, _, err = finish(one)
  assert code == 0, err[-3000:]
  # One checkpoint directory and one metrics.jsonl, written once.
  assert sorted(os.listdir(tmp_path / "hosts" / "checkpoints")) == ["20", "40"]
  assert [r["step"] for r in read_metrics(tmp_path / "hosts") if "loss" in r] == [10, 20, 30, 40]
  assert len((tmp_path / "hosts" / "metrics.jsonl").read_text().splitlines()) == 5  # + the test row
  assert not list((tmp_path / "hosts").glob("*.tmp*"))
  np.testing.assert_array_equal(np.array(losses(tmp_path / "hosts")), np.array(losses(tmp_path / "four")))
  np.testing.assert_allclose(np.array(losses(tmp_path / "one")), np.array(losses(tmp_path / "four")),
                             rtol=1e-3)
  hosts_params, step = final_params(tmp_path / "hosts")
  assert step == 40
  chex.assert_trees_all_close(hosts_params, final_params(tmp_path / "four")[0], rtol=1e-6, atol=1e-7)


def test_fsdp_slices_large_arrays_and_keeps_the_losses(tmp_path, data_dir):
  config = lambda fsdp: with_overrides(vae_config.get_config("smoke"), **{
      "num_devices": 4, "mesh.fsdp": fsdp, "train.num_steps": 8, "train.log_every": 2,
      "train.checkpoint_every": 8, "train.sample_every": 0, "eval.iwae_samples": 0})
  dataset = load_dataset(config(1).data)
  results = {}
  for fsdp in (1, 4):
    run = setup(autoencoders.make_task(config(fsdp), dataset), config(fsdp), str(tmp_path / f"f{fsdp}"), dataset)
    if fsdp == 4:
      large = [x for x in jax.tree.leaves(run.state["params"]) if x.size >= FSDP_MIN_SIZE]
      assert large
      for x in large:  # each device holds a quarter of each large weight (and of its Adam moments)
        shapes = {s.data.shape for s in x.addressable_shards}
        assert len(shapes) == 1 and np.prod(next(iter(shapes))) * 4 == x.size, (x.shape, shapes)
      moments = [x for x in jax.tree.leaves(run.state["opt_state"]) if x.size >= FSDP_MIN_SIZE]
      assert all(np.prod(x.addressable_shards[0].data.shape) * 4 == x.size for x in moments)
    for step in range(8):
      run.state, terms = run.advance(run.state, step, 1)
    results[fsdp] = (jax.device_get(terms), jax.device_get(run.state["params"]))
    run.lock.release()
  chex.assert_trees_all_close(results[1][0], results[4][0], rtol=1e-5)
  chex.assert_trees_all_close(results[1][1], results[4][1], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- preemption

LONG = SMOKE + ("--config.train.num_steps=300", "--config.train.log_every=10",
                "--config.train.checkpoint_every=10", "--config.train.sample_every=0")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  code, _, err = finish(start(workdir, *LONG))
  assert code == 0, err[-3000:]
  return workdir


def wait_for(predicate, timeout=120.0, interval=0.001):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    time.sleep(interval)
  return False


def assert_same_run(workdir, reference):
  logged = lambda d: [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in read_metrics(d)]
  assert logged(workdir) == logged(reference)
  a, b = final_params(workdir), final_params(reference)
  assert a[1] == b[1] == 300
  chex.assert_trees_all_equal(a[0], b[0])


def test_sigterm_saves_the_step_in_flight_and_the_rerun_is_bit_identical(tmp_path, uninterrupted):
  process = start(tmp_path, *LONG)
  metrics = tmp_path / "metrics.jsonl"
  assert wait_for(lambda: metrics.exists() and metrics.stat().st_size > 0)
  process.send_signal(signal.SIGTERM)
  code, out, _ = finish(process)
  assert code == 143
  saved = int(out.split("saved checkpoint at step ")[1].split(";")[0])
  assert 0 < saved < 300 and str(saved) in os.listdir(tmp_path / "checkpoints")
  assert not (tmp_path / ".lock").exists()
  code, out, err = finish(start(tmp_path, *LONG))
  assert code == 0, err[-3000:]
  assert f"resuming from step {saved}" in out
  assert_same_run(tmp_path, uninterrupted)


def test_sigkill_during_a_checkpoint_write_resumes_bit_identical(tmp_path, uninterrupted):
  checkpoints = tmp_path / "checkpoints"
  in_save = lambda: checkpoints.exists() and any("tmp" in p.name for p in checkpoints.iterdir())
  killed_mid_save = False
  for _ in range(5):  # kill the moment a temporary checkpoint directory appears
    process = start(tmp_path, *LONG)
    if not wait_for(lambda: in_save() or process.poll() is not None):
      break
    process.kill()
    process.communicate()
    killed_mid_save = in_save()
    if killed_mid_save:
      break
  assert killed_mid_save, "no kill landed inside a checkpoint write"
  code, out, err = finish(start(tmp_path, *LONG))  # the stale lock (dead pid) is taken over
  assert code == 0, err[-3000:]
  assert not any("tmp" in p.name for p in checkpoints.iterdir())
  assert_same_run(tmp_path, uninterrupted)
