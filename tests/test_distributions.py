"""Shared probability math against closed forms, SciPy and Monte Carlo."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from scipy import stats

from gen_jax import distributions as D


class DistributionsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_normal_log_prob_matches_scipy(self):
    x, mean, log_var = np.array([-1.3, 0.0, 2.5]), np.array([0.2, -0.1, 2.0]), np.array([-1.0, 0.5, 2.0])
    got = self.variant(D.normal_log_prob)(x, mean, log_var)
    want = stats.norm.logpdf(x, mean, np.exp(0.5 * log_var))
    np.testing.assert_allclose(got, want, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_normal_kl_matches_monte_carlo(self):
    m1, lv1, m2, lv2 = 0.3, -0.7, -0.5, 0.4
    kl = self.variant(D.normal_kl)(m1, lv1, m2, lv2)
    z = m1 + np.exp(0.5 * lv1) * np.random.default_rng(0).standard_normal(2_000_000)
    mc = np.mean(stats.norm.logpdf(z, m1, np.exp(0.5 * lv1)) - stats.norm.logpdf(z, m2, np.exp(0.5 * lv2)))
    se = np.std(stats.norm.logpdf(z, m1, np.exp(0.5 * lv1))
                - stats.norm.logpdf(z, m2, np.exp(0.5 * lv2))) / np.sqrt(z.size)
    assert abs(float(kl) - mc) < 4 * se + 1e-6, (float(kl), mc, se)

  def test_normal_kl_zero_for_equal_and_positive_otherwise(self):
    assert float(D.normal_kl(0.4, -0.3, 0.4, -0.3)) == pytest.approx(0.0, abs=1e-7)
    rng = np.random.default_rng(1)
    values = D.normal_kl(*(jnp.asarray(rng.normal(size=100)) for _ in range(4)))
    assert np.all(np.asarray(values) >= 0)

  @chex.variants(with_jit=True, without_jit=True)
  def test_bernoulli_log_prob_is_stable_and_exact(self):
    logits = jnp.array([-100.0, -3.0, 0.0, 3.0, 100.0])
    for x in (0.0, 1.0):
      got = self.variant(D.bernoulli_log_prob)(jnp.full(5, x), logits)
      p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
      with np.errstate(divide="ignore"):
        want = np.where(x == 1, np.log(p), np.log1p(-p))
      want = np.where(np.isfinite(want), want, np.where(x == 1, logits, -logits))
      np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
      assert np.all(np.isfinite(got))

  @parameterized.parameters((0.0, -1.0), (0.3, -3.0), (-0.9, 0.5), (0.99, -6.0))
  def test_discretized_gaussian_sums_to_one_over_bins(self, mean, log_scale):
    x = jnp.linspace(-1.0, 1.0, D.NUM_PIXEL_LEVELS)
    log_p = D.discretized_gaussian_log_likelihood(x, jnp.full_like(x, mean), jnp.full_like(x, log_scale))
    assert float(jnp.exp(jax.nn.logsumexp(log_p))) == pytest.approx(1.0, abs=1e-4)

  def test_discretized_gaussian_matches_cdf_difference(self):
    x = jnp.linspace(-1.0, 1.0, D.NUM_PIXEL_LEVELS)[10:-10]
    mean, scale = 0.1, 0.2
    got = D.discretized_gaussian_log_likelihood(x, jnp.full_like(x, mean), jnp.full_like(x, np.log(scale)))
    h = D.HALF_BIN_WIDTH
    want = np.log(stats.norm.cdf(np.asarray(x) + h, mean, scale) - stats.norm.cdf(np.asarray(x) - h, mean, scale))
    ok = want > -20
    np.testing.assert_allclose(np.asarray(got)[ok], want[ok], rtol=2e-4, atol=2e-4)

  def test_unknown_observation_model_names_the_choices(self):
    with pytest.raises(ValueError, match="bernoulli"):
      D.observation_model("bernouli")

  def test_float32_in_float32_out(self):
    x = jnp.zeros(3, jnp.float32)
    for value in (D.normal_log_prob(x, x, x), D.normal_kl(x, x, x, x), D.bernoulli_log_prob(x, x),
                  D.discretized_gaussian_log_likelihood(x, x, x)):
      assert value.dtype == jnp.float32
