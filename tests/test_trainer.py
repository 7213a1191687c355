"""The trainer's contract: outputs, exact resume, data parallelism, one trace per shape,
non-finite stops, and clear errors that leave the workdir untouched."""

import hashlib
import json
import os
import pathlib

import chex
import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import vae as vae_config
from experiments.faults import complete, launcher
from gen_jax.data import load_dataset
from gen_jax.tasks import autoencoders
from gen_jax.data import BatchSampler
from gen_jax.training import Task, setup, train
from gen_jax.training.optim import make_optimizers
from gen_jax.training.sharding import batch_sharding, to_global
from gen_jax.training.trainer import guarded_step_fn, next_call_length
from gen_jax.training.workdir import WorkdirMismatchError
from gen_jax.training.writers import read_metrics
from tests.helpers import with_overrides


def smoke_config(**overrides):
  return with_overrides(vae_config.get_config("smoke"), **{"eval.iwae_samples": 8,
                                                         "eval.iwae_chunk_size": 8, **overrides})


@pytest.fixture(scope="module")
def digits(data_dir):
  return load_dataset(smoke_config().data)


def snapshot(directory):
  """Path -> content hash for every file under a directory."""
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(pathlib.Path(directory).rglob("*")) if p.is_file()}


def run(config, workdir, dataset, stop_after_step=None):
  task = autoencoders.make_task(config, dataset)
  return train(task, config, str(workdir), dataset, stop_after_step)


def test_smoke_run_writes_the_workdir_contract(tmp_path, digits):
  config = smoke_config()
  result = run(config, tmp_path, digits)
  records = read_metrics(tmp_path)
  steps = [r["step"] for r in records if "loss" in r]
  assert steps == [10, 20, 30, 40]
  assert {"elbo", "kl", "log_px_z", "loss", "elbo_bpd", "grad_norm"} <= set(records[0])
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["20", "40"]
  assert list(tmp_path.glob("events.out.tfevents*"))
  samples = sorted(p.name for p in (tmp_path / "samples").glob("*.png"))
  assert "final_samples.png" in samples and "final_reconstructions.png" in samples
  assert "final_interpolations.png" in samples and "final_latents.png" in samples
  assert (tmp_path / "loss_curves.png").exists()
  evaluation = json.loads((tmp_path / "eval.json").read_text())
  assert evaluation["num_examples"] == 297 and evaluation["step"] == 40
  # The IWAE bound is at least the ELBO; both are finite and in nats.
  assert evaluation["iwae8"] >= evaluation["elbo"] - 0.5
  assert result.step == 40 and np.isfinite(result.last_terms["loss"])


def test_resume_gives_exactly_the_uninterrupted_result(tmp_path, digits, capsys):
  """Also across train.steps_per_call: the interrupted run does 7 steps a call, its resumption
  3 (calls stop at every log and checkpoint step), the straight run 1."""
  config = smoke_config()
  straight = run(config, tmp_path / "straight", digits)
  first = run(smoke_config(**{"train.steps_per_call": 7}), tmp_path / "resumed", digits,
              stop_after_step=20)
  assert first.step == 20
  resumed = run(smoke_config(**{"train.steps_per_call": 3}), tmp_path / "resumed", digits)
  assert "resuming from step 20" in capsys.readouterr().out
  logged = lambda d: [{k: v for k, v in r.items() if k != "steps_per_sec"}
                      for r in read_metrics(d) if "loss" in r]
  assert logged(tmp_path / "straight") == logged(tmp_path / "resumed")
  chex.assert_trees_all_equal(jax.device_get(straight.state["params"]),
                              jax.device_get(resumed.state["params"]))
  chex.assert_trees_all_equal(jax.device_get(straight.state["ema_params"]),
                              jax.device_get(resumed.state["ema_params"]))
  assert straight.last_terms["loss"] == resumed.last_terms["loss"]
  # metrics.jsonl was appended to, not rewritten.
  steps = [r["step"] for r in map(json.loads, open(tmp_path / "resumed" / "metrics.jsonl")) if "loss" in r]
  assert steps == [10, 20, 30, 40]


def test_calls_end_at_every_event_step():
  # steps_per_call 7 from step 0: 7 steps, then up to the log step 10, then 7 more ...
  lengths, step = [], 0
  while step < 40:
    lengths.append(next_call_length(step, 40, 7, (10, 20, 0)))
    step += lengths[-1]
  assert lengths == [7, 3, 7, 3, 7, 3, 7, 3]
  assert next_call_length(5, 6, 7, (10,)) == 1  # the end of the run
  assert next_call_length(0, 40, 1, (10,)) == 1


def test_steps_per_call_below_one_is_refused(tmp_path, digits):
  with pytest.raises(ValueError, match="train.steps_per_call=0"):
    run(smoke_config(**{"train.steps_per_call": 0}), tmp_path, digits)
  assert not (tmp_path / "checkpoints").exists()


def test_global_batch_must_divide_over_devices(tmp_path, digits):
  config = smoke_config(**{"train.batch_size": 30, "num_devices": 4})
  with pytest.raises(ValueError, match="divisible by the 4 devices"):
    run(config, tmp_path, digits)


def test_train_step_compiles_once_per_shape(tmp_path, digits):
  """The trainer's own runner: three steps of one shape trace the loss once; a batch of
  another shape would trace it again."""
  config = smoke_config(**{"num_devices": 2, "train.batch_size": 8})
  task = autoencoders.make_task(config, digits)
  traced = dataclasses.replace(task, loss_fn=chex.assert_max_traces(task.loss_fn, n=1))
  run = setup(traced, config, str(tmp_path), digits)
  for i in range(3):
    run.state, _ = run.advance(run.state, i, 1)
  other = BatchSampler(len(digits.train), 16, 0)
  batch = to_global(other.local_batch(digits.train, 0), batch_sharding(run.mesh))
  with pytest.raises(AssertionError, match="traced"):
    jax.jit(guarded_step_fn(traced, make_optimizers(config.optim, (), 10)[0], ("dynamic_binarize",),
                            jax.random.key(1), jax.random.key(2), 0.99))(run.state, batch)
  run.lock.release()


def poisoned_task(base, bad_step: int, batch_size: int) -> Task:
  """`base` with its "kl" term NaN from step `bad_step` on."""
  bad_from = bad_step * batch_size  # stream position of that step's first example

  def loss_fn(params, batch, key):
    loss, terms = base.loss_fn(params, batch, key)
    poisoned = jnp.where(batch["index"].max() >= bad_from, jnp.nan, terms["kl"])
    return loss + 0.0 * poisoned, {**terms, "kl": poisoned}

  return Task(name="poisoned", init=base.init, loss_fn=loss_fn, check_data=base.check_data)


def test_non_finite_loss_stops_with_step_and_term_and_keeps_good_checkpoint(tmp_path, digits):
  config = smoke_config(**{"train.checkpoint_every": 10, "train.log_every": 5})
  task = poisoned_task(autoencoders.make_task(config, digits), 13, config.train.batch_size)
  with pytest.raises(FloatingPointError, match=r"non-finite value in 'kl' at step 13; .*lower "
                     r"optim.learning_rate \(now 0.001\) or optim.grad_clip_norm \(now 100\); the "
                     r"last good checkpoint is step 10"):
    train(task, config, str(tmp_path), digits)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]


def test_divergence_before_the_first_checkpoint_blocks_no_rerun(tmp_path, digits):
  config = smoke_config(**{"train.checkpoint_every": 20, "train.log_every": 5,
                           "optim.grad_clip_norm": 0.0})
  task = poisoned_task(autoencoders.make_task(config, digits), 3, config.train.batch_size)
  with pytest.raises(FloatingPointError, match=r"at step 3; .*or set optim.grad_clip_norm \(now "
                     r"off\); no checkpoint was saved, so nothing blocks a rerun"):
    train(task, config, str(tmp_path), digits)
  assert not (tmp_path / "config.json").exists() and not (tmp_path / ".lock").exists()
  # The rerun with another config (here: clipping on) starts afresh in the same workdir, and the
  # diverged run's metrics rows are superseded.
  changed = smoke_config(**{"train.checkpoint_every": 20, "train.log_every": 5, "train.num_steps": 5,
                            "eval.iwae_samples": 0})
  train(autoencoders.make_task(changed, digits), changed, str(tmp_path), digits)
  assert [r["step"] for r in read_metrics(tmp_path) if "loss" in r] == [5]


def test_workdir_of_a_different_config_is_refused_and_untouched(tmp_path, digits):
  run(smoke_config(), tmp_path, digits)
  before = snapshot(tmp_path)
  with pytest.raises(WorkdirMismatchError, match=r"different config \(model.latent_dim: 8 there, 12 here\)"):
    run(smoke_config(**{"model.latent_dim": 12}), tmp_path, digits)
  assert snapshot(tmp_path) == before


def test_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path, digits):
  run(smoke_config(**{"train.num_steps": 20}), tmp_path, digits)
  (tmp_path / "config.json").unlink()
  (tmp_path / "config.json").write_text(json.dumps(json.loads(
      smoke_config(**{"model.latent_dim": 12}).to_json_best_effort())))
  before = snapshot(tmp_path)
  with pytest.raises(WorkdirMismatchError, match="checkpoint 20 in .* holds another model's parameters"):
    run(smoke_config(**{"model.latent_dim": 12}), tmp_path, digits)
  assert snapshot(tmp_path) == before


def test_data_outside_the_likelihood_range_is_refused_before_writing(tmp_path, digits):
  config = smoke_config(**{"data.transforms": ()})
  with pytest.raises(ValueError, match=r"bernoulli likelihood needs data in \{0, 1\}.*dynamic_binarize"):
    run(config, tmp_path, digits)
  assert snapshot(tmp_path) == {}


def test_model_image_shape_that_does_not_match_the_data_is_refused(tmp_path, digits):
  config = smoke_config(**{"model.image_shape": (28, 28, 1)})
  with pytest.raises(ValueError, match=r"model.image_shape=\(28, 28, 1\) but data 'digits' has images of shape \(8, 8, 1\)"):
    run(config, tmp_path, digits)


def test_config_typo_on_the_command_line_is_a_one_line_error(tmp_path):
  code, _, err = complete(launcher(tmp_path, "--config=experiments/configs/vae.py:smoke",
                                    "--config.train.num_stpes=5"), timeout=600)
  assert code == 1
  assert err.strip() == ("error: --config.train.num_stpes: config.train has no field "
                         "'num_stpes'; did you mean config.train.num_steps?")
  assert not any(tmp_path.iterdir())


def test_unknown_config_variant_is_named(tmp_path):
  with pytest.raises(ValueError, match="unknown config variant 'smok'"):
    vae_config.get_config("smok")


def test_config_typo_in_code_is_an_error():
  config = vae_config.get_config("smoke")
  with pytest.raises(AttributeError, match="num_steps"):
    config.train.num_stpes = 5


def test_a_full_disk_at_a_save_is_a_clear_error_and_keeps_the_last_checkpoint(tmp_path, digits,
                                                                              monkeypatch):
  import errno
  import orbax.checkpoint as ocp
  save = ocp.CheckpointManager.save

  def full_at_40(self, step, *args, **kwargs):
    if step == 40:
      raise OSError(errno.ENOSPC, "No space left on device")
    return save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, "save", full_at_40)
  with pytest.raises(OSError, match=r"cannot write checkpoint 40 .*No space left on device.*free "
                     r"disk space .* the checkpoints already there are intact"):
    run(smoke_config(**{"eval.iwae_samples": 0}), tmp_path, digits)
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["20"]
  assert not (tmp_path / ".lock").exists()
