"""experiments.evaluate on a :smoke run, and the real-vs-real floor."""

import json

import numpy as np
import pytest

from experiments import evaluate
from experiments.configs import vae as vae_config
from gen_jax.tasks import autoencoders


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_dir):
  workdir = tmp_path_factory.mktemp("smoke_vae")
  config = vae_config.get_config("smoke")
  with config.unlocked():
    config.train.progress_bar = False
    config.eval.iwae_samples = 16
    config.eval.iwae_chunk_size = 16
  autoencoders.train_and_evaluate(config, str(workdir))
  return workdir


def test_evaluate_writes_every_metric_with_its_protocol(smoke_run):
  results = evaluate.evaluate_run(str(smoke_run), num_samples=120)
  saved = json.loads((smoke_run / "eval.json").read_text())
  assert saved == json.loads(json.dumps(results))
  assert saved["params"] == "ema_params" and saved["step"] == 40
  # Likelihood terms of the family ...
  assert np.isfinite(saved["elbo"]) and saved["iwae16"] >= saved["elbo"] - 0.5
  # ... and sample metrics named after their feature net, with the protocol recorded.
  for name in ("fid", "kid", "kid_{}_std", "is", "precision", "recall"):
    key = name.format("digits_cls") if "{}" in name else f"{name}_digits_cls"
    assert np.isfinite(saved[key]), key
  assert saved["num_samples"] == 120 and saved["reference_split"] == "train"
  assert saved["reference_size"] == 1500 and saved["feature_net"] == "digits_cls"
  assert saved["comparable_with_inception_fid"] is False


def test_evaluation_is_reproducible(smoke_run):
  a = evaluate.evaluate_run(str(smoke_run), num_samples=60)
  b = evaluate.evaluate_run(str(smoke_run), num_samples=60)
  assert a["fid_digits_cls"] == b["fid_digits_cls"] and a["elbo"] == b["elbo"]


def test_floor_is_the_real_test_split_against_train(tmp_path, data_dir):
  results = evaluate.evaluate_floor("digits", str(tmp_path))
  assert results["num_samples"] == 297 and results["samples"] == "real test split"
  assert 0 <= results["fid_digits_cls"] < 10
  assert abs(results["kid_digits_cls"]) < 3 * results["kid_digits_cls_std"] + 1e-3
  assert json.loads((tmp_path / "eval.json").read_text())["reference_size"] == 1500


def test_evaluate_needs_a_run_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="run's directory"):
    evaluate.evaluate_run(str(tmp_path))
