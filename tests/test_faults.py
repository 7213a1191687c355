"""Faults through the real launcher (the cases of experiments/faults.py, one of each kind):
signals at a random moment, during a checkpoint write and during evaluation, SIGKILL mid-save,
a damaged newest checkpoint, two runs in one workdir and bad input. Each ends bit-identical to
an uninterrupted run after the same command is rerun, or in a one-line error that leaves the
workdir as it was."""

import json
import pathlib

import pytest

from experiments import faults
from gen_jax.training.workdir import CheckpointStore


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  code, _, err = faults.run(workdir, *faults.RUN_FLAGS)
  assert code == 0, err[-3000:]
  return workdir


# SIGTERM mid-save and SIGTERM in training (experiments.faults runs 20 trials, evaluation too).
@pytest.mark.parametrize("trial", [1, 3])
def test_signals_save_the_state_and_the_rerun_is_bit_identical(tmp_path, reference, trial):
  outcome = faults.signal_trial(tmp_path, reference, trial, seconds=5.0)
  assert outcome.ok, outcome
  assert outcome.steps_redone == 0
  assert not (tmp_path / ".lock").exists()


def test_sigkill_during_a_checkpoint_write_resumes_bit_identical(tmp_path, reference):
  outcome = faults.sigkill_mid_save(tmp_path, reference)
  assert outcome.ok, outcome


def test_a_damaged_newest_checkpoint_is_moved_aside_and_the_run_resumes(tmp_path, reference):
  outcome = faults.damaged_checkpoint(tmp_path, reference, "truncated data file")
  assert outcome.ok, outcome
  assert outcome.bytes_lost == 0 and list((tmp_path / "corrupt_checkpoints").iterdir())


def test_two_runs_in_one_workdir(tmp_path, reference):
  outcome = faults.concurrent_runs(tmp_path, reference)
  assert outcome.ok, outcome
  assert "is in use by a running process" in outcome.detail


# Two of experiments.faults' ten bad inputs (tests/test_trainer.py has the config typo, the
# in-process tests the rest of the refusals).
@pytest.mark.parametrize("name", ["workdir not writable", "batch not divisible by the devices"])
def test_bad_input_is_one_line_and_leaves_the_workdir_as_it_was(tmp_path, reference, name):
  outcome = faults.bad_input(tmp_path, name, reference)
  assert outcome.ok, outcome


def copy_checkpoints(reference, tmp_path):
  """The reference run's checkpoints (steps 200, 250 and 300) in a fresh directory."""
  import shutil
  shutil.copytree(reference / "checkpoints", tmp_path / "checkpoints")
  return CheckpointStore(str(tmp_path), 50, 3)


@pytest.mark.parametrize("damage", ["corrupt metadata", "emptied manifest", "another model"])
def test_restore_tells_damage_from_another_model(tmp_path, reference, damage):
  import jax
  from gen_jax.training.workdir import WorkdirMismatchError
  store = copy_checkpoints(reference, tmp_path)
  like = store.manager.item_metadata(300).tree
  abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype), like)
  newest = tmp_path / "checkpoints" / "300" / "default"
  if damage == "corrupt metadata":
    (newest / "_METADATA").write_text("{ not json")
  elif damage == "emptied manifest":
    for manifest in newest.rglob("manifest.ocdbt"):
      manifest.write_bytes(b"")
  warnings = []
  if damage == "another model":
    other = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[:-1] + (x.shape[-1] + 1,), x.dtype)
                         if x.ndim == 2 else x, abstract)
    with pytest.raises(WorkdirMismatchError, match="holds another model's parameters"):
      store.restore_latest(other, warn=warnings.append)
    assert (tmp_path / "checkpoints" / "300").exists()  # nothing moved
    return
  restored, step = store.restore_latest(abstract, warn=warnings.append)
  assert step == 250 and len(warnings) == 1 and "checkpoint 300 is damaged" in warnings[0]
  assert not (tmp_path / "checkpoints" / "300").exists()
  (aside,) = (tmp_path / "corrupt_checkpoints").iterdir()
  assert aside.name.startswith("300-") and (aside / "default").exists()
  store.close()


def test_leftover_temporary_checkpoints_are_removed(tmp_path, reference):
  tmp = tmp_path / "checkpoints" / "350.orbax-checkpoint-tmp-1234567890"
  copy_checkpoints(reference, tmp_path).close()
  tmp.mkdir()
  (tmp / "partial").write_bytes(b"\0" * 64)
  store = CheckpointStore(str(tmp_path), 50, 3)
  assert store.latest_step() == 300 and not tmp.exists()
  store.close()


def test_metrics_rows_past_the_restored_step_are_dropped(tmp_path):
  from gen_jax.training.workdir import truncate_metrics
  rows = [{"step": s, "loss": float(s)} for s in (10, 20, 30, 40)]
  path = pathlib.Path(tmp_path) / "metrics.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 50, "lo')  # a torn line
  truncate_metrics(str(tmp_path), 20)
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]
