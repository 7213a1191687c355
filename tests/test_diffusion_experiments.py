"""The diffusion experiments end to end on tiny runs of their :smoke configs (a few steps
each: DDPM and the 2-D ones here, VDM and classifier-free guidance in
test_diffusion_vdm_cfg_experiments.py), the sampler sweep on a trained run, and the config
errors a researcher meets first."""

import json

import numpy as np
import pytest

from experiments import diffusion_sweep
from experiments.configs import diffusion as diffusion_config, ode_2d, swiss_roll
from gen_jax.data import load_dataset
from gen_jax.tasks import diffusion
from tests.helpers import FEW_STEPS, with_overrides


def test_ddpm_smoke_bound_terms_add_up_and_the_ddim_sweep_runs(tmp_path, data_dir):
  config = with_overrides(diffusion_config.get_config("smoke"), **FEW_STEPS)
  result = diffusion.train_and_evaluate(config, str(tmp_path))
  m = result.eval_metrics
  assert m["bound_examples"] == 16
  np.testing.assert_allclose(m["nelbo"], m["prior_kl"] + m["diffusion_kl"] + m["decoder_nll"], rtol=1e-5)
  np.testing.assert_allclose(m["nelbo_bpd"], m["nelbo"] / (64 * np.log(2)), rtol=1e-6)
  assert (tmp_path / "samples" / "final_samples.png").exists()
  assert json.loads((tmp_path / "eval.json").read_text())["nelbo_bpd"] == pytest.approx(m["nelbo_bpd"])
  sweep = diffusion_sweep.run_sweep(str(tmp_path), "ddim_steps", [2, 5], num_samples=40)
  assert [r["num_steps"] for r in sweep["rows"]] == [2, 5]
  assert all(np.isfinite(r["fid_digits_cls"]) and r["seconds_per_sample"] > 0 for r in sweep["rows"])
  assert (tmp_path / "sweep_ddim_steps.json").exists() and (tmp_path / "sweep_ddim_steps.png").exists()


def test_sde_2d_smoke_scores_test_points_with_the_ode(tmp_path):
  config = with_overrides(ode_2d.get_config("smoke"), **FEW_STEPS)
  m = diffusion.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert m["ode_examples"] == 64 and np.isfinite(m["ode_nll"])
  assert 2.0 < m["ode_data_nll"] < 4.0  # the true NLL of 8-gaussian points (entropy ≈ 2.84)


def test_swiss_roll_smoke_writes_the_figure_1_trajectories(tmp_path):
  config = with_overrides(swiss_roll.get_config("smoke"), **FEW_STEPS)
  diffusion.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / "samples" / "final_trajectories.png").exists()


@pytest.mark.parametrize("field,value,message", [
    ("model.process", "ddmp", "unknown model.process 'ddmp'"),
    ("model.target", "score", "unknown model.target 'score'"),
    ("sample.sampler", "pc", "unknown sample.sampler 'pc'"),
    ("model.network", "mlp", "takes data of rank 1"),
    ("data.transforms", (), None),
])
def test_config_mistakes_get_errors_that_say_what_to_fix(tmp_path, data_dir, field, value, message):
  config = with_overrides(diffusion_config.get_config("smoke"), **{field: value})
  if message is None:  # data in [0, 1]: the images must be scaled to [-1, 1]
    with pytest.raises(ValueError, match="scale_to_symmetric"):
      diffusion.train_and_evaluate(config, str(tmp_path))
    assert not (tmp_path / "checkpoints").exists()
    return
  with pytest.raises(ValueError, match=message):
    diffusion.make_task(config, load_dataset(config.data))
