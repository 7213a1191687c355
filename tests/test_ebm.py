"""Energy-based models against truths that cannot be tuned: Langevin chains on a Gaussian energy
reaching the exact stationary law of the discretised dynamics (the seeds' Algorithm 1 with its
noise set apart included), MALA matching the target itself, log Z by quadrature against the
closed form, AIS against the same, score matching's optimum for Gaussian data, and the replay
buffer resuming bit-exact and giving equal losses on 1 and 4 devices."""

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from experiments import log_prob as log_prob_tool
from experiments import sample as sample_tool
from experiments.configs import ebm_2d, ebm_digits
from gen_jax import ebm
from gen_jax.data import load_dataset
from gen_jax.ebm import losses, partition, replay, samplers
from gen_jax.keys import fold_in_indices
from gen_jax.nets import ConvEnergy, MLPEnergy
from gen_jax.tasks import ebm as ebm_task
from gen_jax.training import train
from gen_jax.training.writers import read_metrics
from tests.helpers import FEW_STEPS, check_points_tools, with_overrides

PRECISION = np.array([[2.0, 0.6], [0.6, 1.0]])
MEAN = np.array([0.5, -1.0])


def gaussian_energy(precision=PRECISION, mean=MEAN):
  a, mu = jnp.asarray(precision, jnp.float32), jnp.asarray(mean, jnp.float32)
  return lambda x: 0.5 * jnp.einsum("ni,ij,nj->n", x - mu, a, x - mu)


def chain_moments(x):
  x = np.asarray(x, np.float64)
  return x.mean(0), np.cov(x.T)


# ---------------------------------------------------------------------------- samplers


@pytest.mark.parametrize("step_size, noise_scale", [(0.3, None), (0.3, 0.4), (0.05, None)])
def test_langevin_reaches_the_stationary_law_of_the_discretised_dynamics(step_size, noise_scale):
  """x_k = (I - ηA) x_{k-1} + ηAμ + s ω: stationary N(μ, Σ), Σ = (I-ηA) Σ (I-ηA)ᵀ + s² I."""
  num_chains, num_steps = 20_000, 300
  x0 = jnp.zeros((num_chains, 2))
  x = ebm.langevin_sample(gaussian_energy(), x0, jax.random.key(0), num_steps, step_size, noise_scale)
  mean, cov = chain_moments(x)
  exact = ebm.langevin_stationary_covariance(PRECISION, step_size, noise_scale)
  # Monte Carlo tolerances: 5 standard errors of the mean and of each covariance entry.
  np.testing.assert_array_less(np.abs(mean - MEAN), 5 * np.sqrt(np.diag(exact) / num_chains))
  cov_se = np.sqrt((exact ** 2 + np.outer(np.diag(exact), np.diag(exact))) / num_chains)
  np.testing.assert_array_less(np.abs(cov - exact), 5 * cov_se)
  if step_size == 0.3:
    # The discretisation bias is far outside the Monte Carlo error: ULA at η = 0.3 does not
    # sample A⁻¹, and the seeds' σ set apart samples yet another law.
    assert np.max(np.abs(exact - np.linalg.inv(PRECISION))) > 10 * cov_se.max()


def test_algorithm_1_variance_on_a_unit_gaussian_is_s2_over_2eta_minus_eta2():
  """The issue's trap: for E = x²/2, x_k = (1 - η) x_{k-1} + σ ω has variance σ² / (2η - η²)."""
  eta, sigma = 0.2, 0.1
  x = ebm.langevin_sample(lambda x: 0.5 * jnp.sum(x ** 2, axis=1), jnp.zeros((50_000, 1)),
                          jax.random.key(1), 200, eta, sigma)
  var = float(np.var(np.asarray(x, np.float64)))
  closed_form = sigma ** 2 / (2 * eta - eta ** 2)
  assert ebm.langevin_stationary_covariance(np.eye(1), eta, sigma)[0, 0] == pytest.approx(closed_form)
  assert var == pytest.approx(closed_form, rel=0.03)  # 50,000 chains: se of a variance ≈ 0.6 %
  assert abs(var - 1.0) > 0.9  # far from the target's variance 1


def test_mala_matches_the_target_itself():
  num_chains, eta = 20_000, 0.3
  x, acceptance = ebm.mala_sample(gaussian_energy(), jnp.zeros((num_chains, 2)), jax.random.key(2), 400, eta)
  mean, cov = chain_moments(x)
  target = np.linalg.inv(PRECISION)
  cov_se = np.sqrt((target ** 2 + np.outer(np.diag(target), np.diag(target))) / num_chains)
  np.testing.assert_array_less(np.abs(mean - MEAN), 5 * np.sqrt(np.diag(target) / num_chains))
  # MALA's chains mix more slowly than ULA's (rejections): a looser 8 standard errors.
  np.testing.assert_array_less(np.abs(cov - target), 8 * cov_se)
  assert 0.5 < float(jnp.mean(acceptance)) < 1.0


def test_samplers_use_per_example_keys_and_report_the_first_nonfinite_step():
  energy = gaussian_energy()
  x0 = jax.random.normal(jax.random.key(3), (6, 2))
  key = jax.random.key(4)
  full = ebm.langevin_sample(energy, x0, key, 10, 0.1)
  part = ebm.langevin_sample(energy, x0[2:4], fold_in_indices(key, jnp.arange(2, 4)), 10, 0.1)
  np.testing.assert_array_equal(full[2:4], part)
  # An energy that is NaN beyond |x| > 3 only: chain 1 starts there.
  blowing = lambda x: jnp.where(jnp.abs(x[:, 0]) > 3.0, jnp.nan, energy(x))
  start = x0.at[1].set(jnp.array([5.0, 0.0]))
  result = samplers.run_langevin(blowing, start, key, 5, 0.1)
  assert int(result.first_nonfinite[1]) == 0
  assert np.all(np.asarray(result.first_nonfinite)[[0, 2, 3, 4, 5]] == samplers.NO_STEP)


@pytest.mark.parametrize("bad", [0.0, -0.1])
def test_a_step_size_at_or_below_zero_is_refused(bad):
  with pytest.raises(ValueError, match="step_size.*must be > 0"):
    ebm.langevin_sample(gaussian_energy(), jnp.zeros((2, 2)), jax.random.key(0), 3, bad)
  with pytest.raises(ValueError, match="step_size.*must be > 0"):
    ebm.mala_sample(gaussian_energy(), jnp.zeros((2, 2)), jax.random.key(0), 3, bad)


class TestVariants(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_langevin_and_losses(self):
    energy = gaussian_energy()
    x0 = jax.random.normal(jax.random.key(5), (4, 2))
    sample = self.variant(lambda x, k: ebm.langevin_sample(energy, x, k, 5, 0.1))
    np.testing.assert_allclose(sample(x0, jax.random.key(6)),
                               jax.jit(lambda x, k: ebm.langevin_sample(energy, x, k, 5, 0.1))(x0, jax.random.key(6)),
                               rtol=1e-6, atol=1e-6)
    apply = lambda p, x: 0.5 * jnp.sum(p * x ** 2, axis=1)
    cd = self.variant(lambda p, a, b: losses.contrastive_divergence_loss(apply, p, a, b, 0.1)[0])
    p = jnp.array([1.0, 2.0])
    expected = (jnp.mean(apply(p, x0)) - jnp.mean(apply(p, x0 + 1)) +
                0.1 * (jnp.mean(apply(p, x0) ** 2) + jnp.mean(apply(p, x0 + 1) ** 2)))
    np.testing.assert_allclose(cd(p, x0, x0 + 1), expected, rtol=1e-6)


def test_langevin_compiles_once_for_each_shape():
  energy = gaussian_energy()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def sample(x, key):
    return ebm.langevin_sample(energy, x, key, 4, 0.1)

  for seed in range(3):
    sample(jnp.full((3, 2), float(seed)), jax.random.key(seed))


# ---------------------------------------------------------------------------- log Z


def test_grid_log_partition_matches_the_closed_form_of_a_gaussian():
  """Diagonal precision on a box: Z = Π_i √(2π/a_i) (Φ(√a_i (h - μ_i)) - Φ(√a_i (l - μ_i)))."""
  a, mu, low, high = np.array([4.0, 1.0]), np.array([0.3, -0.2]), -3.0, 3.0
  with jax.enable_x64(True):
    log_z = float(ebm.grid_log_partition(gaussian_energy(np.diag(a), mu), low, high, 400, chunks=4))
  sd = 1 / np.sqrt(a)
  exact = np.sum(0.5 * np.log(2 * np.pi / a) + np.log(stats.norm.cdf((high - mu) / sd) - stats.norm.cdf((low - mu) / sd)))
  assert log_z == pytest.approx(exact, abs=1e-4)


def test_ais_log_partition_matches_the_closed_form_within_its_error():
  a, mu, low, high = np.array([6.0, 3.0, 10.0]), np.array([0.4, 0.6, 0.5]), 0.0, 1.0
  energy = lambda x: 0.5 * jnp.sum(a * (x - mu) ** 2, axis=1)
  log_z, std_err, acceptance = jax.jit(lambda k: partition.ais_log_partition(
      energy, (3,), k, 500, partition.linear_betas(200), 0.05, low, high, mala_steps=2))(jax.random.key(7))
  sd = 1 / np.sqrt(a)
  exact = np.sum(0.5 * np.log(2 * np.pi / a) + np.log(stats.norm.cdf((high - mu) / sd) - stats.norm.cdf((low - mu) / sd)))
  assert float(std_err) < 0.05
  assert float(log_z) == pytest.approx(exact, abs=max(4 * float(std_err), 0.01))
  assert 0.3 < float(acceptance) <= 1.0


# ---------------------------------------------------------------------------- score matching


def quadratic_apply(params, x):
  """E(x) = ½ xᵀ P x - bᵀx with P = L Lᵀ (params: L lower-triangular entries, b)."""
  p = params["chol"] @ params["chol"].T
  return 0.5 * jnp.einsum("ni,ij,nj->n", x, p, x) - x @ params["b"]


def gaussian_data(num=4000, seed=0):
  rng = np.random.default_rng(seed)
  cov = np.array([[1.0, 0.5], [0.5, 0.8]])
  return rng.multivariate_normal([1.0, -0.5], cov, size=num)


def params_for(precision, mean):
  return {"chol": jnp.asarray(np.linalg.cholesky(precision)), "b": jnp.asarray(precision @ mean)}


def test_sliced_score_matching_optimum_is_the_data_score():
  """With the projections √D e_i (E[v vᵀ] = I over the D of them) the sliced loss is exactly
  Hyvärinen's objective, which the Gaussian with the data's own mean and (1/N) covariance
  minimises: gradient 0 there."""
  with jax.enable_x64(True):
    x = jnp.asarray(gaussian_data())
    n, d = x.shape
    basis = jnp.broadcast_to(math.sqrt(d) * jnp.eye(d)[:, None, :], (d, n, d))
    mean, cov = np.mean(np.asarray(x), 0), np.cov(np.asarray(x).T, bias=True)
    loss = lambda p: losses.sliced_score_matching_loss(quadratic_apply, p, x, basis)[0]
    at_optimum = params_for(np.linalg.inv(cov), mean)
    grads = jax.grad(loss)(at_optimum)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) < 1e-10
    # ... and Hyvärinen's objective written out: mean ½‖P(x - μ)‖² - tr P.
    p = np.linalg.inv(cov)
    written = np.mean(0.5 * np.sum(((np.asarray(x) - mean) @ p) ** 2, 1)) - np.trace(p)
    assert float(loss(at_optimum)) == pytest.approx(written, rel=1e-10)
    # Random Rademacher projections: an unbiased estimate of the same objective.
    keys = fold_in_indices(jax.random.key(8), jnp.arange(n))
    v = losses.rademacher_projections(keys, 64, (d,), jnp.float64)
    assert float(losses.sliced_score_matching_loss(quadratic_apply, at_optimum, x, v)[0]) == \
        pytest.approx(written, rel=0.02)


def test_denoising_score_matching_optimum_is_the_score_of_the_noised_data():
  """For a quadratic energy the DSM loss is least squares in (P, b): its minimiser on the
  samples (solved directly) has zero loss gradient, and approaches (S + σ² I)⁻¹."""
  sigma = 0.5
  with jax.enable_x64(True):
    x = gaussian_data(20_000, seed=1)
    eps = np.random.default_rng(2).normal(size=x.shape)
    x_noisy = x + sigma * eps
    # s(x̃) = -P x̃ + b should regress -ε/σ: least squares on features [x̃, 1] per output.
    features = np.concatenate([x_noisy, np.ones((len(x), 1))], 1)
    coef, *_ = np.linalg.lstsq(features, -eps / sigma, rcond=None)
    p = -coef[:2].T
    p = 0.5 * (p + p.T)  # the unconstrained fit is symmetric up to sampling error
    b = coef[2]
    loss = lambda prm: losses.denoising_score_matching_loss(quadratic_apply, prm, jnp.asarray(x),
                                                            jnp.asarray(eps), sigma)[0]
    prm = {"chol": jnp.asarray(np.linalg.cholesky(p)), "b": jnp.asarray(b)}
    grads = jax.grad(loss)(prm)
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grads)) < 2e-3
    noised_precision = np.linalg.inv(np.array([[1.0, 0.5], [0.5, 0.8]]) + sigma ** 2 * np.eye(2))
    np.testing.assert_allclose(p, noised_precision, atol=0.03)


# ---------------------------------------------------------------------------- replay buffer


def test_buffer_sizes_are_checked():
  with pytest.raises(ValueError, match="smaller than the global batch"):
    replay.slots_per_row(16, 32)
  with pytest.raises(ValueError, match="multiple of the global batch"):
    replay.slots_per_row(48, 32)
  assert replay.slots_per_row(64, 32) == 2


def test_replay_draws_and_writes_back_per_row():
  keys = fold_in_indices(jax.random.key(9), jnp.arange(5))
  buffer = replay.init_buffer(keys, 3, (2,), -1.0, 1.0)
  starts, slots = replay.draw_starts(buffer, keys, 0.0, -1.0, 1.0)
  np.testing.assert_array_equal(starts, buffer[jnp.arange(5), slots])
  restarted, _ = replay.draw_starts(buffer, keys, 1.0, -1.0, 1.0)
  assert not np.any(np.all(np.asarray(restarted)[:, None] == np.asarray(buffer), axis=-1))
  new = replay.write_back(buffer, slots, starts + 10.0)
  np.testing.assert_array_equal(new[jnp.arange(5), slots], starts + 10.0)
  changed = np.any(np.asarray(new) != np.asarray(buffer), axis=-1)
  assert changed.sum() == 5


# ---------------------------------------------------------------------------- networks


def test_energy_networks_give_one_energy_per_example():
  x = jnp.ones((3, 2))
  params = MLPEnergy((8, 8)).init(jax.random.key(0), x)
  assert MLPEnergy((8, 8)).apply(params, x).shape == (3,)
  images = jnp.ones((3, 8, 8, 1))
  conv = ConvEnergy((4, 8))
  assert conv.apply(conv.init(jax.random.key(0), images), images).shape == (3,)


# ---------------------------------------------------------------------------- the task and tools


def points_config(**overrides):
  return with_overrides(ebm_2d.get_config("smoke"), **{**FEW_STEPS, **overrides})


@pytest.fixture(scope="module")
def moons(data_dir):
  return load_dataset(points_config().data)


def quiet(task):
  """The task without figures (the figure code runs once, in the tool test)."""
  return dataclasses.replace(task, write_figures=None)


@pytest.mark.parametrize("rule", ["short_run", "cd", "dsm", "ssm"])
def test_every_rule_trains_and_scores_exactly(tmp_path, moons, rule):
  config = points_config(**{"train.negatives": rule})
  m = train(quiet(ebm_task.make_task(config, moons)), config, str(tmp_path), moons).eval_metrics
  assert m["test_outside_box"] == 0 and np.isfinite(m["nll"]) and np.isfinite(m["log_z"])
  assert m["nll"] > m["data_nll"] - 0.5  # a 4-step model is no better than the truth


def test_mala_negatives_report_their_acceptance(tmp_path, moons):
  config = points_config(**{"sampler.name": "mala", "train.negatives": "cd", "train.num_steps": 2,
                            "train.log_every": 1})
  train(quiet(ebm_task.make_task(config, moons)), config, str(tmp_path), moons)
  rates = [r["acceptance_rate"] for r in read_metrics(tmp_path) if "acceptance_rate" in r]
  assert len(rates) == 2 and all(0.0 < r <= 1.0 for r in rates)


def test_replay_buffer_resumes_bit_exact_and_matches_on_four_devices(tmp_path, moons):
  config = lambda n, **o: points_config(**{"num_devices": n, "train.num_steps": 6, "train.log_every": 1,
                                           "train.checkpoint_every": 3, **o})
  task = quiet(ebm_task.make_task(config(1), moons))
  straight = train(task, config(1), str(tmp_path / "straight"), moons)
  train(task, config(1), str(tmp_path / "resumed"), moons, stop_after_step=3)
  resumed = train(task, config(1), str(tmp_path / "resumed"), moons)
  chex.assert_trees_all_equal(jax.device_get(straight.state["carry"]), jax.device_get(resumed.state["carry"]))
  chex.assert_trees_all_equal(jax.device_get(straight.state["params"]), jax.device_get(resumed.state["params"]))
  four = train(task, config(4), str(tmp_path / "four"), moons)
  assert four.state["carry"]["buffer"].sharding.spec[0] is not None  # sharded along the data axis
  losses_of = lambda d: np.array([r["loss"] for r in read_metrics(d) if "loss" in r])
  np.testing.assert_allclose(losses_of(tmp_path / "straight"), losses_of(tmp_path / "four"), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(straight.state["carry"]["buffer"], four.state["carry"]["buffer"], rtol=1e-4, atol=1e-5)


def test_a_nonfinite_chain_stops_the_run_naming_example_and_step(tmp_path, moons):
  config = points_config(**{"train.negatives": "short_run", "sampler.noise_scale": float("nan")})
  with pytest.raises(FloatingPointError, match=r"chain for example \d+ .* non-finite at MCMC step 1 of 5"):
    train(quiet(ebm_task.make_task(config, moons)), config, str(tmp_path), moons)
  assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


@pytest.mark.parametrize("overrides,message", [
    ({"train.buffer_size": 16}, "smaller than the global batch"),
    ({"sampler.step_size": 0.0}, "step size must be > 0"),
    ({"train.negatives": "pcd"}, "unknown train.negatives 'pcd'"),
    ({"sampler.name": "hmc"}, "unknown sampler 'hmc'"),
    ({"model.kind": "conv"}, "image energy"),
])
def test_bad_configs_get_one_clear_error(moons, overrides, message):
  with pytest.raises(ValueError, match=message):
    ebm_task.make_task(points_config(**overrides), moons)


def test_2d_run_writes_figures_and_its_tools_sample_and_score(tmp_path):
  config = points_config()
  m = ebm_task.train_and_evaluate(config, str(tmp_path)).eval_metrics
  for name in ("density", "energy_landscape", "trajectories"):
    assert (tmp_path / "samples" / f"final_{name}.png").exists()
  samples = check_points_tools(tmp_path, config, m["nll"], "quadrature")
  assert np.abs(samples).max() <= m["box_half_width"]


def test_image_smoke_run_estimates_log_z_by_ais(tmp_path):
  config = with_overrides(ebm_digits.get_config("smoke"), **FEW_STEPS)
  m = ebm_task.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert np.isfinite(m["ais_log_z"]) and m["ais_log_z_std_err"] >= 0 and m["num_examples"] == 64
  np.testing.assert_allclose(m["nll_bpd"], m["nll"] / (64 * np.log(2)) + 8, rtol=1e-6)
  assert (tmp_path / "samples" / "final_fresh_chains.png").exists()
  images = sample_tool.sample_run(str(tmp_path), 4)
  assert images.shape == (4, 8, 8, 1) and images.min() >= 0 and images.max() <= 1
  log_p, method = log_prob_tool.log_prob_run(str(tmp_path), images)
  assert "AIS" in method and log_p.shape == (4,)
