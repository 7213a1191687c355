"""The VDM and classifier-free-guidance experiments end to end on tiny runs of their :smoke
configs (a few steps each), with the guidance sweep on the trained run. (A file of its own so
that pytest-xdist's two workers share the diffusion smokes.)"""

import jax
import jax.numpy as jnp
import numpy as np

from experiments import diffusion_sweep
from experiments.configs import cfg_digits, vdm_digits
from gen_jax.data import load_dataset
from gen_jax.tasks import diffusion
from tests.helpers import FEW_STEPS, with_overrides

# What these tests check (the learned schedule, label dropout and guidance) does not depend on
# the U-Net's depth: a one-level U-Net (no down/up-sampling, attention only in the middle)
# compiles faster. The two-level smoke U-Net runs in test_diffusion_experiments.
ONE_LEVEL_UNET = {"model.channel_mults": (1,), "model.attention_resolutions": ()}


def test_vdm_smoke_keeps_a_monotone_schedule_with_fixed_end_points(tmp_path, data_dir):
  config = with_overrides(vdm_digits.get_config("smoke"), **FEW_STEPS, **ONE_LEVEL_UNET)
  result = diffusion.train_and_evaluate(config, str(tmp_path))
  m = result.eval_metrics
  np.testing.assert_allclose(m["nelbo"], m["prior_kl"] + m["recon_nll"] + m["diffusion"], rtol=1e-5)
  dataset = load_dataset(config.data)
  model = diffusion.build_model(config, dataset)
  gamma = jax.jit(model.process.gamma_fn(result.state["params"]))(jnp.linspace(0.0, 1.0, 501))
  np.testing.assert_allclose([gamma[0], gamma[-1]], [config.model.gamma_min, config.model.gamma_max],
                             atol=1e-4)
  assert float(jnp.min(jnp.diff(gamma))) >= -1e-5
  # The trained schedule moved (its variance gradient is not zero).
  initial = model.process.init_extra(jax.random.key(0))
  assert not np.allclose(jax.tree.leaves(initial)[-1], jax.tree.leaves(result.state["params"]["gamma"])[-1])
  samples = diffusion.make_task(config, dataset).sample(result.state["ema_params"],
                                                        jax.random.split(jax.random.key(1), 3))
  assert (tmp_path / "samples" / "final_gamma.png").exists()
  values = np.asarray(samples) * 255
  np.testing.assert_allclose(values, np.round(values), atol=1e-3)  # on the 8-bit grid


def test_class_conditional_smoke_writes_per_class_grids_and_the_guidance_sweep(tmp_path, data_dir):
  config = with_overrides(cfg_digits.get_config("smoke"), **FEW_STEPS, **ONE_LEVEL_UNET)
  diffusion.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / "samples" / "final_samples_by_class.png").exists()
  sweep = diffusion_sweep.run_sweep(str(tmp_path), "guidance", [0, 3], num_samples=40)
  assert [r["guidance_weight"] for r in sweep["rows"]] == [0.0, 3.0]
  assert (tmp_path / "guidance_w3.png").exists()
