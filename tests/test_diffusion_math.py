"""Gaussian diffusion math against truths: Bayes' rule, closed forms, exact reverse processes."""

import chex
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import distributions
from gen_jax.diffusion import gaussian, losses

T = 1000


@pytest.fixture(scope="module")
def schedule():
  return gaussian.make_schedule(gaussian.linear_betas(T))


def test_linear_and_cosine_schedules_follow_their_definitions():
  betas = gaussian.linear_betas(T)
  np.testing.assert_allclose([betas[0], betas[-1]], [1e-4, 0.02], rtol=1e-6)
  cosine = gaussian.make_schedule(gaussian.cosine_betas(T))
  # ᾱ(t) = f(t)/f(0) with f(t) = cos²(π/2 (t/T + s)/(1 + s)), wherever β is not clipped.
  f = lambda t: np.cos((t / T + 0.008) / 1.008 * np.pi / 2) ** 2
  idx = np.array([0, 100, 500, 900])
  np.testing.assert_allclose(cosine.alphas_cumprod[idx], f(idx + 1) / f(0), rtol=1e-4)
  with pytest.raises(ValueError, match=r"every value in \(0, 1\)"):
    gaussian.make_schedule(jnp.array([0.1, 1.5]))


def test_cosine_betas_equal_the_float64_reference_schedule():
  """iDDPM's / diffusers' squaredcos_cap_v2, written out in Python floats (float64): every β
  within float32 rounding (before: up to 0.2 % off at the first and last indices)."""
  alpha_bar = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
  reference = np.array([min(1 - alpha_bar((i + 1) / T) / alpha_bar(i / T), 0.999) for i in range(T)])
  betas = gaussian.cosine_betas(T)
  assert betas.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(betas, np.float64), reference, rtol=1e-7)


def test_posterior_matches_bayes_rule_written_out(schedule):
  """q(x_{t-1}|x_t,x_0) ∝ q(x_t|x_{t-1}) q(x_{t-1}|x_0): precisions add, means combine."""
  with jax.enable_x64():
    s = gaussian.make_schedule(gaussian.linear_betas(T).astype(jnp.float64))
    x0 = jnp.array([[0.3, -1.2]], jnp.float64)
    x_t = jnp.array([[1.1, 0.4]], jnp.float64)
    for index in (1, 10, 500, 999):
      t = jnp.array([index])
      a, ab_prev = s.alphas[index], s.alphas_cumprod_prev[index]
      # likelihood in x_{t-1}: N(x_t; √α x_{t-1}, β) -> precision α/β, mean x_t/√α
      prec_lik, prec_prior = a / s.betas[index], 1.0 / (1.0 - ab_prev)
      var = 1.0 / (prec_lik + prec_prior)
      mean = var * (np.sqrt(a) / s.betas[index] * x_t + np.sqrt(ab_prev) / (1 - ab_prev) * x0)
      got_mean, got_var, got_log_var = gaussian.q_posterior(s, x0, x_t, t)
      np.testing.assert_allclose(got_mean, mean, rtol=1e-10)
      np.testing.assert_allclose(got_var, var * np.ones((1, 2)), rtol=1e-10)
      np.testing.assert_allclose(got_log_var, np.log(var) * np.ones((1, 2)), rtol=1e-10)
    # Index 0: x_{-1} is x_0 itself (variance 0, mean x_0); the log variance is clipped.
    mean0, var0, log_var0 = gaussian.q_posterior(s, x0, x_t, jnp.array([0]))
    np.testing.assert_allclose(mean0, x0, atol=1e-12)
    assert float(var0[0, 0]) == 0.0 and np.isfinite(log_var0).all()


class ConversionsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_eps_x0_v_mean_round_trip(self):
    s = gaussian.make_schedule(gaussian.cosine_betas(T))
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.normal(k1, (16, 3, 4))
    eps = jax.random.normal(k2, (16, 3, 4))
    t = jax.random.randint(k3, (16,), 1, T - 1)

    @self.variant
    def round_trips(x0, eps, t):
      x_t = gaussian.q_sample(s, x0, t, eps)
      out = {}
      for target in ("eps", "x0", "v", "mean"):
        value = gaussian.target_value(s, target, x0, x_t, t, eps)
        out[target] = gaussian.model_x0(s, target, x_t, t, value)
      out["eps_back"] = gaussian.predict_eps_from_x0(s, x_t, t, out["eps"])
      return out

    out = round_trips(x0, eps, t)
    for target in ("eps", "x0", "v", "mean"):
      np.testing.assert_allclose(out[target], x0, atol=2e-3, err_msg=target)
    np.testing.assert_allclose(out["eps_back"], eps, atol=2e-3)


def test_ddim_with_eta_one_over_every_step_is_the_ddpm_posterior_step(schedule):
  key = jax.random.key(1)
  x_t, eps, z = jax.random.normal(key, (3, 8, 5))
  for index in (0, 1, 37, 999):
    t = jnp.full((8,), index)
    ddpm = gaussian.ddpm_step(schedule, x_t, t, eps, z, "small")
    ddim = gaussian.ddim_step(schedule, x_t, t, t - 1, eps, 1.0, z)
    np.testing.assert_allclose(ddim, ddpm, atol=2e-4, err_msg=f"t={index}")


def test_weighted_eps_mse_is_the_kl_term(schedule):
  """For the ε target with fixed σ_t², KL(q ‖ p_θ) = w(t) |ε - ε_θ|² + a constant of the
  variances (zero for σ_t² = β̃_t)."""
  k = jax.random.split(jax.random.key(2), 3)
  x0, eps, eps_hat = (jax.random.normal(kk, (6, 10)) for kk in k)
  for variance in ("small", "large"):
    t = jnp.array([1, 5, 50, 300, 700, 999])
    x_t = gaussian.q_sample(schedule, x0, t, eps)
    kl = losses.term_at(schedule, eps_hat, x0, x_t, t, "eps", variance)
    constant = losses.term_at(schedule, eps, x0, x_t, t, "eps", variance)
    if variance == "small":
      np.testing.assert_allclose(constant, 0.0, atol=1e-4)
    kl = kl - constant
    weighted = losses.eps_mse_weight(schedule, t, variance) * jnp.sum((eps - eps_hat) ** 2, -1)
    np.testing.assert_allclose(kl, weighted, rtol=2e-3)


def _gaussian_reverse(s, m, var0):
  """Exact reverse q(x_{t-1} | x_t) for data N(m, var0): per index, x_t-independent variance
  and a mean linear in x_t."""
  ab = np.concatenate([[1.0], np.asarray(s.alphas_cumprod)])      # ᾱ at indices -1..T-1
  marg_var = ab * var0 + (1 - ab)
  alphas = np.asarray(s.alphas)
  gain = np.sqrt(alphas) * marg_var[:-1] / marg_var[1:]
  rev_var = marg_var[:-1] - alphas * marg_var[:-1] ** 2 / marg_var[1:]
  return ab, gain, rev_var


def test_variational_bound_equals_the_nll_under_the_exact_reverse_process():
  """For x_0 ~ N(m, s0²) and p_θ(x_{t-1}|x_t) = q(x_{t-1}|x_t) (the optimal model), the bound
  is -log q(x_0) + E[log q(x_T) - log p(x_T) | x_0]; averaged over the data this is the
  entropy plus KL(q(x_T) ‖ N(0, 1)), both closed forms."""
  with jax.enable_x64():
    s = gaussian.make_schedule(gaussian.linear_betas(T).astype(jnp.float64))
    m, var0 = 0.7, 0.3 ** 2
    ab, gain, rev_var = _gaussian_reverse(s, m, var0)
    sqrt_ab, gain = jnp.asarray(np.sqrt(ab)), jnp.asarray(gain)

    def mean_fn(x_t, t):  # target "mean": the exact reverse mean
      return (sqrt_ab[t] * m)[:, None] + gain[t][:, None] * (x_t - (sqrt_ab[t + 1] * m)[:, None])

    # 5 data points, 800 independent evaluations of the (stochastic) bound for each.
    points = m + np.sqrt(var0) * jax.random.normal(jax.random.key(3), (5, 1), jnp.float64)
    x0 = jnp.repeat(points, 800, axis=0)
    terms = losses.full_bound_terms(s, mean_fn, x0, jax.random.key(4), target="mean",
                                    variance=jnp.log(jnp.asarray(rev_var)), decoder="gaussian")
    # Per data point the bound is -log q(x_0) + E[log q(x_T)/p(x_T) | x_0]; the second term is
    # O(ᾱ_T) = O(4e-5) here, far below the Monte Carlo error.
    per_point = np.asarray(terms["nelbo"]).reshape(5, 800)
    stderr = per_point.std(1) / np.sqrt(800)
    nll = -np.asarray(distributions.normal_log_prob(points[:, 0], m, np.log(var0)))
    np.testing.assert_array_less(np.abs(per_point.mean(1) - nll), 4 * stderr + 1e-3)


def test_training_losses_are_unbiased_for_the_full_bound(schedule):
  """E_t[T · vb_term] + prior = the scanned bound, for any network (here a fixed linear map)."""
  x0 = jnp.clip(jax.random.normal(jax.random.key(5), (1, 4)) * 0.5, -1, 1)
  fn = lambda x, t: 0.3 * x + 0.01 * t[:, None].astype(x.dtype) / T
  full = losses.full_bound_terms(schedule, fn, x0, jax.random.key(6))["nelbo"]
  many = jnp.repeat(x0, 20_000, axis=0)
  _, terms = jax.jit(lambda k: losses.training_losses(schedule, fn, many, k, loss_type="vlb"))(jax.random.key(7))
  estimate = terms["nelbo"]
  stderr = float(jnp.std(estimate) / np.sqrt(estimate.shape[0]))
  assert abs(float(jnp.mean(estimate)) - float(full[0])) < 4 * stderr + 0.02 * abs(float(full[0])), (
      float(jnp.mean(estimate)), float(full[0]), stderr)


def test_losses_name_bad_choices(schedule):
  x0 = jnp.zeros((2, 3))
  fn = lambda x, t: x
  with pytest.raises(ValueError, match="unknown diffusion target 'epsilon'"):
    losses.training_losses(schedule, fn, x0, jax.random.key(0), target="epsilon")
  with pytest.raises(ValueError, match="unknown loss_type"):
    losses.training_losses(schedule, fn, x0, jax.random.key(0), loss_type="l2")
  with pytest.raises(ValueError, match="unknown reverse variance"):
    losses.term_at(schedule, x0, x0, x0, jnp.array([1, 2]), variance="learned")


def test_training_loss_compiles_once_per_shape(schedule):
  fn = lambda x, t: 0.5 * x

  @jax.jit
  @chex.assert_max_traces(n=1)
  def loss(x0, key):
    return losses.training_losses(schedule, fn, x0, key)[0].mean()

  for i in range(3):
    loss(jnp.full((4, 2), 0.1 * i), jax.random.key(i))
