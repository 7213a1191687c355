"""experiments.evaluate on a :smoke run, and the real-vs-real floor."""

import json

import jax
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


def test_sample_tool_writes_binary_images_keyed_per_sample(smoke_run, tmp_path):
  """The command line end to end: N samples under the key `samples`, in [0, 1] (binary for a
  Bernoulli VAE); sample i does not depend on how many are drawn at once."""
  from experiments import sample
  from experiments.faults import complete, launcher
  out = tmp_path / "s.npz"
  code, _, err = complete(launcher(smoke_run, "--num_samples=6", f"--output={out}", "--batch_size=4",
                                   program="sample", devices=jax.device_count()), timeout=300)
  assert code == 0, err[-2000:]
  samples = np.load(out)["samples"]
  assert samples.shape == (6, 8, 8, 1) and set(np.unique(samples)) <= {0.0, 1.0}
  np.testing.assert_array_equal(samples, sample.sample_run(str(smoke_run), 6, batch_size=6))


def test_log_prob_tool_is_the_iwae_bound_row_by_row(smoke_run):
  from experiments import log_prob
  from gen_jax.autoencoders import vae as vae_math
  from gen_jax.keys import fold_in_indices
  from gen_jax.tasks import registry
  run = registry.load_run(str(smoke_run))
  x = (np.random.default_rng(0).random((5, 8, 8, 1)) < 0.3).astype(np.float32)
  values, method = log_prob.log_prob_run(str(smoke_run), x, batch_size=2)
  assert method.startswith("the IWAE-16 bound")
  keys = fold_in_indices(jax.random.key(0), np.arange(5, dtype=np.uint32))
  expected = vae_math.iwae_bound(
      autoencoders.model_kind("vae").build(run.config.model, (8, 8, 1)).apply, run.params,
      x, keys, 16, chunk_size=16)
  np.testing.assert_allclose(values, np.asarray(expected), rtol=1e-5)
  assert np.all(values < 0)  # log-probabilities of binary images (masses)
  with pytest.raises(ValueError, match="binarize it first"):
    log_prob.log_prob_run(str(smoke_run), x * 0.5)
  with pytest.raises(ValueError, match=r"shape \(4, 4, 1\) but this model's data have shape \(8, 8, 1\)"):
    log_prob.log_prob_run(str(smoke_run), np.zeros((2, 4, 4, 1), np.float32))


def test_models_without_a_density_or_sampler_are_refused(tmp_path, data_dir):
  from experiments import log_prob, sample
  from experiments.configs import ae as ae_config
  config = ae_config.get_config("smoke")
  with config.unlocked():
    config.train.progress_bar = False
    config.train.num_steps, config.train.checkpoint_every, config.train.sample_every = 2, 2, 0
  autoencoders.train_and_evaluate(config, str(tmp_path))
  with pytest.raises(ValueError, match="has no density"):
    log_prob.log_prob_run(str(tmp_path), np.zeros((2, 8, 8, 1), np.float32))
  with pytest.raises(ValueError, match="does not sample"):
    sample.sample_run(str(tmp_path), 2)
