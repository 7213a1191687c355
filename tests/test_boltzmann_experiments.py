"""The DBN and Hopfield experiments end to end on their :smoke configs."""

import json

import numpy as np

from experiments.configs import dbn as dbn_config
from experiments.configs import hopfield as hopfield_config
from gen_jax.tasks import dbn, hopfield


def test_dbn_smoke_trains_layers_and_bounds_the_likelihood(tmp_path, data_dir):
  config = dbn_config.get_config("smoke")
  with config.unlocked():
    config.train.progress_bar = False
  layers, metrics = dbn.train_and_evaluate(config, str(tmp_path))
  assert [p["W"].shape for p in layers] == [(64, 16), (16, 8)]
  assert (tmp_path / "layer_0" / "checkpoints").is_dir() and (tmp_path / "layer_1" / "checkpoints").is_dir()
  assert (tmp_path / "samples" / "final_samples.png").exists()
  assert json.loads((tmp_path / "eval.json").read_text()) == json.loads(json.dumps(metrics))
  assert metrics["test_log_prob_bound"] < 0 and np.isfinite(metrics["top_ais_log_z"])
  # The importance-weighted estimate tightens the one-sample bound (on average).
  assert metrics["test_log_prob_iw10"] >= metrics["test_log_prob_bound"] - 0.05


def test_hopfield_smoke_shows_the_collapse(tmp_path):
  rows = hopfield.train_and_evaluate(hopfield_config.get_config("smoke"), str(tmp_path))
  assert rows[0]["mean_overlap"] > 0.99
  assert rows[-1]["mean_overlap"] < rows[0]["mean_overlap"]
  assert (tmp_path / "capacity.png").exists() and (tmp_path / "results.json").exists()


def test_sbn_wake_sleep_smoke_improves_and_estimates_log_p(tmp_path, data_dir):
  from experiments.configs import sbn as sbn_config
  from gen_jax.tasks import sbn
  from gen_jax.training.writers import read_metrics
  config = sbn_config.get_config("smoke")
  with config.unlocked():
    config.train.progress_bar = False
  result = sbn.train_and_evaluate(config, str(tmp_path))
  records = [r for r in read_metrics(tmp_path) if "loss" in r]
  assert records[-1]["wake_log_joint"] > records[0]["wake_log_joint"]
  assert result.eval_metrics["num_examples"] == 297
  assert -64 * np.log(2) * 2 < result.eval_metrics["test_log_prob_is20"] < 0
  assert (tmp_path / "samples" / "final_samples.png").exists()


def test_dbm_smoke_trains_and_bounds_the_test_likelihood(tmp_path, data_dir):
  from experiments.configs import dbm as dbm_config
  from gen_jax.tasks import dbm
  config = dbm_config.get_config("smoke")
  with config.unlocked():
    config.train.progress_bar = False
  result = dbm.train_and_evaluate(config, str(tmp_path))
  metrics = result.eval_metrics
  assert np.isfinite(metrics["ais_log_z"]) and metrics["test_variational_bound"] < 0
  assert set(result.state["carry"]) == {"v", "h1", "h2"}
  assert result.state["carry"]["h2"].shape == (32, 8)
  assert (tmp_path / "samples" / "final_samples.png").exists()
  # Weight-doubled pre-training ran first, each module in its own resumable workdir.
  for layer in (0, 1):
    assert (tmp_path / f"pretrain_layer_{layer}" / "checkpoints").is_dir()
