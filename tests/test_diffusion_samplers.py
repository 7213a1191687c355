"""Samplers and likelihoods driven by the exact score of a 2-D Gaussian mixture."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.diffusion import analytic, gaussian, samplers, sde

NUM_SAMPLES = 2000
WEIGHTS = np.array([0.2, 0.3, 0.5])
MEANS = np.array([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]])


@pytest.fixture(scope="module")
def mixture():
  cov = np.stack([np.eye(2) * 0.1, np.array([[0.15, 0.05], [0.05, 0.1]]), np.eye(2) * 0.05])
  return analytic.GaussianMixture(jnp.asarray(WEIGHTS, jnp.float32), jnp.asarray(MEANS, jnp.float32),
                                  jnp.asarray(cov, jnp.float32))


def assert_reproduces(samples, mixture):
  """Every mode is covered with its weight (nearest-mean assignment; 3.5 binomial s.e. + 0.02
  for discretisation), and the samples' log-density under the truth is typical."""
  samples = np.asarray(samples)
  assert np.isfinite(samples).all()
  nearest = np.argmin(((samples[:, None, :] - MEANS[None]) ** 2).sum(-1), axis=1)
  fractions = np.bincount(nearest, minlength=3) / len(samples)
  tolerance = 3.5 * np.sqrt(WEIGHTS * (1 - WEIGHTS) / len(samples)) + 0.02
  np.testing.assert_array_less(np.abs(fractions - WEIGHTS), tolerance, err_msg=str(fractions))
  reference = mixture.sample(jax.random.key(99), 20_000)
  typical = float(jnp.mean(mixture.log_prob(reference)))
  got = float(jnp.mean(mixture.log_prob(jnp.asarray(samples))))
  assert abs(got - typical) < 0.15, (got, typical)


def test_mixture_score_is_the_gradient_of_its_log_density(mixture):
  x = jax.random.normal(jax.random.key(0), (7, 2)) * 2
  autodiff = jax.vmap(jax.grad(lambda xi: mixture.log_prob(xi[None])[0]))(x)
  np.testing.assert_allclose(mixture.score(x), autodiff, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def schedule():
  return gaussian.make_schedule(gaussian.linear_betas(1000))


def test_ddpm_ancestral_sampling_reproduces_the_mixture(mixture, schedule):
  eps = analytic.eps_fn(mixture, schedule)
  samples = jax.jit(lambda k: samplers.sample_ddpm(schedule, eps, k, (NUM_SAMPLES, 2)))(jax.random.key(1))
  assert_reproduces(samples, mixture)


@pytest.mark.parametrize("num_steps", [50, 100])
def test_ddim_reproduces_the_mixture(mixture, schedule, num_steps):
  eps = analytic.eps_fn(mixture, schedule)
  samples = jax.jit(lambda k: samplers.sample_ddim(schedule, eps, k, (NUM_SAMPLES, 2), num_steps))(
      jax.random.key(2))
  assert_reproduces(samples, mixture)


def test_samples_do_not_depend_on_the_batch_they_are_drawn_in(mixture, schedule):
  eps = analytic.eps_fn(mixture, schedule)
  big = samplers.sample_ddim(schedule, eps, jax.random.key(3), (8, 2), 10, eta=1.0)
  small = samplers.sample_ddim(schedule, eps, jax.random.key(3), (3, 2), 10, eta=1.0)
  np.testing.assert_allclose(big[:3], small, atol=1e-5)


def test_ddim_timesteps_cover_the_chain_and_reject_bad_counts():
  ts = samplers.ddim_timesteps(1000, 50)
  assert ts[0] == 999 and ts[-1] == 0 and len(ts) == 50 and np.all(np.diff(ts) < 0)
  with pytest.raises(ValueError, match="num_steps"):
    samplers.ddim_timesteps(1000, 0)


def test_predictor_corrector_sampling_reproduces_the_mixture(mixture):
  vp = sde.VPSDE()
  score = analytic.score_fn(mixture, vp)
  samples = jax.jit(lambda k: sde.pc_sample(vp, score, k, (NUM_SAMPLES, 2), num_steps=500))(jax.random.key(4))
  assert_reproduces(samples, mixture)


def test_annealed_langevin_reproduces_the_mixture(mixture):
  sigmas = np.geomspace(5.0, 0.01, 10)

  def score(x, sigma):
    return jax.vmap(lambda xi, s: mixture.noised(1.0, s).score(xi[None])[0])(x, sigma)

  samples = jax.jit(lambda k: sde.annealed_langevin_sample(score, k, (NUM_SAMPLES, 2), sigmas, 100, 5e-5))(
      jax.random.key(5))
  assert_reproduces(samples, mixture)


@pytest.mark.parametrize("name", ["vp", "ve"])
def test_probability_flow_ode_likelihood_is_the_true_log_density(mixture, name):
  process = sde.SDES[name]()
  score = analytic.score_fn(mixture, process)
  x = mixture.sample(jax.random.key(6), 64)
  exact = analytic.log_prob_at(mixture, process, x, process.t_min)
  end = lambda x1: analytic.log_prob_at(mixture, process, x1, 1.0)
  got = jax.jit(lambda x: sde.ode_log_likelihood(process, score, x, num_steps=200, end_log_prob=end))(x)
  np.testing.assert_allclose(got, exact, atol=0.02)  # RK4 at 200 steps in float32
  # With the default N(0, prior_std²) end the error is the prior mismatch: tiny for VP
  # (m(1) ≈ 0.006), up to ~0.05 nats for VE at σ_max = 50.
  default = jax.jit(lambda x: sde.ode_log_likelihood(process, score, x, num_steps=200))(x)
  np.testing.assert_allclose(default, exact, atol=0.03 if name == "vp" else 0.1)
  # Hutchinson's estimator is unbiased: its mean over examples and probes agrees too.
  many = jnp.repeat(x[:8], 64, axis=0)
  estimate = jax.jit(lambda x, k: sde.ode_log_likelihood(process, score, x, k, 200, False, end))(
      many, jax.random.key(7))
  per_point = np.asarray(estimate).reshape(8, 64)
  stderr = per_point.std(1) / 8
  np.testing.assert_array_less(np.abs(per_point.mean(1) - np.asarray(exact[:8])), 4 * stderr + 0.02)


def test_probability_flow_ode_sampling_reproduces_the_mixture(mixture):
  vp = sde.VPSDE()
  score = analytic.score_fn(mixture, vp)
  samples = jax.jit(lambda k: sde.ode_sample(vp, score, k, (NUM_SAMPLES, 2), 200))(jax.random.key(8))
  assert_reproduces(samples, mixture)


def test_classifier_free_guidance_combines_both_predictions():
  def cond_eps(x, t, labels):
    return jnp.where((labels == 10)[:, None], 0.0, 1.0) * x + labels[:, None].astype(x.dtype)
  x = jnp.ones((4, 2))
  t = jnp.zeros(4, jnp.int32)
  labels = jnp.array([1, 2, 3, 4])
  guided = samplers.guided_eps_fn(cond_eps, labels, 10, 2.0)(x, t)
  want = 3.0 * (x + labels[:, None]) - 2.0 * (0.0 * x + 10)
  np.testing.assert_allclose(guided, want)
  dropped = samplers.drop_labels(jnp.arange(2000) % 10, jax.random.split(jax.random.key(0), 2000), 0.2, 10)
  assert abs(float(jnp.mean(dropped == 10)) - 0.2) < 0.03
