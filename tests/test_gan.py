"""GAN math against its formulas: each loss and its gradient written out, the gradient penalty of
a linear critic (‖w‖ - 1)², spectral normalisation against the SVD, the non-saturating
generator gradient alive where the minimax one vanishes, and PacGAN's mode-coverage metrics on
constructed samples."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import log_prob as log_prob_tool
from experiments import sample as sample_tool
from experiments.configs import gan_2d, gan_digits
from gen_jax import gan
from gen_jax import keys as keys_lib
from gen_jax.data.densities import MODE_MIXTURES
from gen_jax.gan import losses
from gen_jax.data import load_dataset
from gen_jax.metrics.modes import mode_coverage
from gen_jax.nets.gan import SPECTRAL
from gen_jax.tasks import gan as gan_task
from gen_jax.training import train
from gen_jax.training.writers import read_metrics
from tests.helpers import FEW_STEPS, with_overrides

R = np.array([-3.0, -0.5, 0.2, 2.5])
F = np.array([-4.0, -0.8, 0.3, 1.5])
sig = lambda x: 1 / (1 + np.exp(-x))

WRITTEN = {  # (J^D(r, f), J^G(f)) as the formulas read, in NumPy
    "minimax": (lambda r, f: np.mean(-np.log(sig(r))) + np.mean(-np.log(1 - sig(f))),
                lambda f: np.mean(np.log(1 - sig(f)))),
    "non_saturating": (lambda r, f: np.mean(-np.log(sig(r))) + np.mean(-np.log(1 - sig(f))),
                       lambda f: np.mean(-np.log(sig(f)))),
    "wasserstein": (lambda r, f: np.mean(f) - np.mean(r), lambda f: np.mean(-f)),
    "hinge": (lambda r, f: np.mean(np.maximum(0, 1 - r)) + np.mean(np.maximum(0, 1 + f)),
              lambda f: np.mean(-f)),
    "least_squares": (lambda r, f: np.mean(0.5 * (r - 1) ** 2) + np.mean(0.5 * f ** 2),
                      lambda f: np.mean(0.5 * (f - 1) ** 2)),
}


def central_difference(fn, x, h=1e-6):
  grads = np.zeros_like(x)
  for i in range(len(x)):
    e = np.zeros_like(x)
    e[i] = h
    grads[i] = (fn(x + e) - fn(x - e)) / (2 * h)
  return grads


@pytest.mark.parametrize("kind", sorted(WRITTEN))
def test_each_loss_and_its_gradient_match_the_formula(kind):
  d_written, g_written = WRITTEN[kind]
  with jax.enable_x64(True):
    r, f = jnp.asarray(R), jnp.asarray(F)
    assert float(gan.discriminator_loss(r, f, kind)) == pytest.approx(d_written(R, F), rel=1e-12)
    assert float(gan.generator_loss(f, kind)) == pytest.approx(g_written(F), rel=1e-12)
    grad_r, grad_f = jax.grad(lambda r_, f_: gan.discriminator_loss(r_, f_, kind), argnums=(0, 1))(r, f)
    # hinge's kinks are away from these logits
    np.testing.assert_allclose(grad_r, central_difference(lambda x: d_written(x, F), R), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grad_f, central_difference(lambda x: d_written(R, x), F), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(jax.grad(lambda f_: gan.generator_loss(f_, kind))(f),
                               central_difference(g_written, F), rtol=1e-6, atol=1e-9)


def test_an_unknown_loss_is_named():
  with pytest.raises(ValueError, match="unknown GAN loss 'wgan'"):
    gan.generator_loss(jnp.zeros(2), "wgan")


def test_non_saturating_gradient_survives_where_minimax_vanishes():
  """D rejects every fake (logit -15): ∂J^G/∂f is -σ(f) ≈ -3e-7 for minimax, -(1 - σ(f)) ≈ -1
  for the non-saturating cost (per example, over the batch size)."""
  f = jnp.full((8,), -15.0)
  minimax = jax.grad(lambda x: gan.generator_loss(x, "minimax"))(f)
  saturating_free = jax.grad(lambda x: gan.generator_loss(x, "non_saturating"))(f)
  assert float(jnp.max(jnp.abs(minimax))) < 1e-7
  np.testing.assert_allclose(saturating_free, -1.0 / 8, rtol=1e-6)


def test_gradient_penalty_of_a_linear_critic_is_norm_minus_one_squared():
  w = jnp.array([0.3, -1.2, 2.0])
  critic = lambda x: x @ w
  real = jax.random.normal(jax.random.key(0), (16, 3))
  fake = jax.random.normal(jax.random.key(1), (16, 3))
  gp = gan.gradient_penalty(critic, real, fake, jax.random.key(2))
  assert float(gp) == pytest.approx((float(jnp.linalg.norm(w)) - 1) ** 2, rel=1e-6)
  # R1 of a linear critic: ‖w‖².
  assert float(gan.r1_penalty(critic, real)) == pytest.approx(float(jnp.sum(w ** 2)), rel=1e-6)


def test_gradient_penalty_interpolates_per_example():
  """A critic x ↦ ½‖x‖² has ∇ = x̂, so the penalty reveals each example's u."""
  real, fake = jnp.ones((4, 2)), jnp.zeros((4, 2))
  gp = gan.gradient_penalty(lambda x: 0.5 * jnp.sum(x ** 2, axis=1), real, fake, jax.random.key(3))
  key = jax.random.key(3)
  u = np.array([float(keys_lib.uniform(jax.random.fold_in(key, n), ())) for n in range(4)])
  assert float(gp) == pytest.approx(np.mean((u * np.sqrt(2) - 1) ** 2), rel=1e-5)


def test_spectral_norm_matches_the_svd():
  kernel = jax.random.normal(jax.random.key(4), (3, 3, 4, 6))
  matrix = np.asarray(kernel).reshape(-1, 6)
  top = np.linalg.svd(matrix, compute_uv=False)[0]
  u = jax.random.normal(jax.random.key(5), (6,))
  for _ in range(30):  # one iteration per call, as in training; u carried between calls
    normalized, u, sigma = gan.spectral_normalize(kernel, u)
  assert float(sigma) == pytest.approx(top, rel=1e-4)
  assert np.linalg.svd(np.asarray(normalized).reshape(-1, 6), compute_uv=False)[0] == pytest.approx(1.0, rel=1e-4)


def test_weight_clipping_bounds_every_parameter():
  params = {"a": jnp.array([-2.0, 0.005, 3.0]), "b": {"c": jnp.array([[0.02, -0.5]])}}
  clipped = gan.clip_weights(params, 0.01)
  chex.assert_trees_all_close(clipped, {"a": jnp.array([-0.01, 0.005, 0.01]),
                                        "b": {"c": jnp.array([[0.01, -0.01]])}})


class TestVariants(chex.TestCase):

  @chex.all_variants(with_pmap=False)
  def test_losses(self):
    for kind in losses.LOSSES:
      d = self.variant(lambda r, f, kind=kind: gan.discriminator_loss(r, f, kind))
      np.testing.assert_allclose(d(jnp.asarray(R, jnp.float32), jnp.asarray(F, jnp.float32)),
                                 WRITTEN[kind][0](R, F), rtol=1e-5)


def test_mode_coverage_on_constructed_samples():
  ring = MODE_MIXTURES["ring_of_gaussians"]
  rng = np.random.default_rng(0)
  # 6 of the 8 modes, 3 of them twice as often, plus 10 % far-off points.
  picks = np.repeat(np.arange(6), [2, 2, 2, 1, 1, 1] * np.array(100))
  samples = ring.centres[picks] + ring.std * rng.normal(size=(len(picks), 2)) * 0.5
  samples = np.concatenate([samples, np.full((90, 2), 5.0)])
  m = mode_coverage(samples, ring.centres, ring.std)
  assert m["modes_captured"] == 6
  assert m["high_quality_fraction"] == pytest.approx(900 / 990)
  q = np.array([2, 2, 2, 1, 1, 1]) / 9
  assert m["reverse_kl"] == pytest.approx(np.sum(q * np.log(8 * q)))
  perfect = mode_coverage(ring.sample(rng, 8000), ring.centres, ring.std)
  assert perfect["modes_captured"] == 8 and perfect["high_quality_fraction"] > 0.98
  assert perfect["reverse_kl"] < 0.01
  grid = MODE_MIXTURES["grid_of_gaussians"]
  assert mode_coverage(grid.sample(rng, 10_000), grid.centres, grid.std)["modes_captured"] == 25


# ---------------------------------------------------------------------------- the task and tools


def points_config(**overrides):
  return with_overrides(gan_2d.get_config("smoke"), **{**FEW_STEPS, **overrides})


@pytest.fixture(scope="module")
def ring(data_dir):
  return load_dataset(points_config().data)


def test_packing_concatenates_consecutive_examples():
  x = jnp.arange(12.0).reshape(6, 2)
  np.testing.assert_array_equal(gan_task.pack(x, 3), [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]])
  images = jnp.arange(16.0).reshape(4, 2, 1, 2)
  packed = gan_task.pack(images, 2)
  assert packed.shape == (2, 2, 1, 4)
  np.testing.assert_array_equal(packed[0, 1, 0], [2, 3, 6, 7])


def test_resume_is_exact_with_both_optimizers_and_the_spectral_state(tmp_path, ring):
  """Every option at once: spectral norm, PacGAN packs of 2, 2 critic steps, WGAN-GP, R1, clipping."""
  overrides = {"model.spectral_norm": True, "gan.pack": 2, "gan.critic_steps": 2, "gan.loss": "wasserstein",
               "gan.gradient_penalty": 0.1, "gan.r1": 1.0, "gan.clip": 0.5}
  # Adam's eps raised from 1e-8: it divides near-zero gradients by their own rounding, which
  # turns the float32 differences of 1- and 4-device means into ±learning-rate updates.
  config = lambda n: points_config(**{"num_devices": n, "train.num_steps": 6, "train.log_every": 1,
                                      "train.checkpoint_every": 3, "optim.eps": 1e-4, **overrides})
  task = dataclasses.replace(gan_task.make_task(config(1), ring), write_figures=None)
  straight = train(task, config(1), str(tmp_path / "straight"), ring)
  train(task, config(1), str(tmp_path / "resumed"), ring, stop_after_step=3)
  resumed = train(task, config(1), str(tmp_path / "resumed"), ring)
  chex.assert_trees_all_equal(jax.device_get(straight.state["params"]), jax.device_get(resumed.state["params"]))
  chex.assert_trees_all_equal(jax.device_get(straight.state["opt_state"]), jax.device_get(resumed.state["opt_state"]))
  u = straight.state["params"]["discriminator"][SPECTRAL]
  assert jax.tree.leaves(u)  # the power-iteration vectors are part of the checkpointed state
  four = train(task, config(4), str(tmp_path / "four"), ring)
  terms = lambda d: np.array([[r["discriminator_loss"], r["generator_loss"]] for r in read_metrics(d)
                              if "generator_loss" in r])
  np.testing.assert_allclose(terms(tmp_path / "straight"), terms(tmp_path / "four"), rtol=1e-4, atol=1e-5)


def test_2d_run_scores_modes_draws_the_game_and_refuses_log_prob(tmp_path):
  config = points_config(**{"train.sample_every": 2})
  m = gan_task.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert 0 <= m["modes_captured"] <= 8 and 0 <= m["high_quality_fraction"] <= 1
  assert (tmp_path / "samples" / "final_game.png").exists()
  samples = sample_tool.sample_run(str(tmp_path), 8)
  assert samples.shape == (8, 2) and np.all(np.isfinite(samples))
  with pytest.raises(ValueError, match="has no density"):
    log_prob_tool.log_prob_run(str(tmp_path), samples)


def test_conditional_dcgan_smoke_samples_chosen_classes(tmp_path):
  config = with_overrides(gan_digits.get_config("conditional,smoke"), **FEW_STEPS)
  gan_task.train_and_evaluate(config, str(tmp_path))
  for name in ("samples_by_class", "interpolations"):
    assert (tmp_path / "samples" / f"final_{name}.png").exists()
  images = sample_tool.sample_run(str(tmp_path), 4)
  assert images.shape == (4, 8, 8, 1) and images.min() >= 0 and images.max() <= 1


def test_a_diverging_run_names_the_player_and_term(tmp_path, ring):
  config = points_config(**{"optim.generator.learning_rate": 1e30, "optim.generator.eps": 0.0})
  with pytest.raises(FloatingPointError, match=r"non-finite value in '(generator|discriminator)_\w+'"):
    train(gan_task.make_task(config, ring), config, str(tmp_path), ring)


@pytest.mark.parametrize("overrides,message", [
    ({"gan.loss": "wgan"}, "unknown GAN loss 'wgan'"),
    ({"gan.critic_steps": 0}, "at least 1 update"),
    ({"model.num_classes": 10}, "needs labelled data"),
    ({"gan.pack": 3}, "must split into"),
])
def test_bad_configs_get_one_clear_error(ring, overrides, message):
  with pytest.raises(ValueError, match=message):
    gan_task.make_task(points_config(**overrides), ring)
