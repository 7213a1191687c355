"""ELBO and IWAE bounds on a linear-Gaussian model (probabilistic PCA), whose log p(x) is exact."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy import stats

from gen_jax import distributions as D
from gen_jax.autoencoders import vae

DATA_DIM, LATENT_DIM, NOISE_VAR = 5, 2, 0.3
# The bounds compiled whole (one program per sample count) where a test does not ask for eager
# execution: op-by-op dispatch compiles every primitive of every shape on its own.
jit_elbo = jax.jit(vae.elbo, static_argnames=("apply_fn", "num_samples"))
jit_iwae_bound = jax.jit(vae.iwae_bound, static_argnames=("apply_fn", "num_samples", "chunk_size"))
jit_log_importance_weights = jax.jit(vae.log_importance_weights,
                                     static_argnames=("apply_fn", "num_samples"))


def ppca_params(seed=0, orthogonal=False):
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(DATA_DIM, LATENT_DIM))
  if orthogonal:
    w = np.linalg.qr(w)[0] * np.array([1.5, 0.7])
  return {"W": jnp.asarray(w, jnp.float32), "mu": jnp.asarray(rng.normal(size=DATA_DIM), jnp.float32),
          "A": jnp.asarray(0.3 * rng.normal(size=(DATA_DIM, LATENT_DIM)), jnp.float32),
          "b": jnp.zeros(LATENT_DIM, jnp.float32), "q_log_var": jnp.full(LATENT_DIM, -1.0, jnp.float32)}


def ppca_apply(params, x, key):
  """p(z) = N(0, I), p(x|z) = N(Wz + μ, σ² I); q(z|x) = N(Ax + b, diag e^{q_log_var})."""
  mean = x @ params["A"] + params["b"]
  log_var = jnp.broadcast_to(params["q_log_var"], mean.shape)
  z = vae.reparameterize(key, mean, log_var)
  log_noise = jnp.log(NOISE_VAR) * jnp.ones_like(x)
  return {"log_px_z": D.normal_log_prob(x, z @ params["W"].T + params["mu"], log_noise).sum(-1),
          "log_pz": D.standard_normal_log_prob(z).sum(-1),
          "log_qz_x": D.normal_log_prob(z, mean, log_var).sum(-1),
          "kl": D.normal_kl(mean, log_var, 0.0, 0.0).sum(-1)}


def exact_log_px(params, x):
  w, mu = np.asarray(params["W"], np.float64), np.asarray(params["mu"], np.float64)
  cov = w @ w.T + NOISE_VAR * np.eye(DATA_DIM)
  return stats.multivariate_normal(mu, cov).logpdf(np.asarray(x, np.float64))


def exact_posterior_params(params):
  """Sets q to the true posterior N(M⁻¹Wᵀ(x-μ), σ²M⁻¹), M = WᵀW + σ²I (diagonal when W ⟂)."""
  w, mu = np.asarray(params["W"], np.float64), np.asarray(params["mu"], np.float64)
  m_inv = np.linalg.inv(w.T @ w + NOISE_VAR * np.eye(LATENT_DIM))
  a = (m_inv @ w.T).T
  return {**params, "A": jnp.asarray(a, jnp.float32), "b": jnp.asarray(-mu @ a, jnp.float32),
          "q_log_var": jnp.asarray(np.log(np.diag(NOISE_VAR * m_inv)), jnp.float32)}


def data(n=16, seed=3):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(n, DATA_DIM)), jnp.float32)


def test_elbo_is_below_log_px_and_iwae_rises_toward_it():
  params, x, key = ppca_params(), data(), jax.random.key(0)
  log_px = exact_log_px(params, x)
  elbo = np.asarray(jit_elbo(ppca_apply, params, x, key, num_samples=2000))
  assert np.all(elbo < log_px), (elbo - log_px)
  gaps = []
  for k in (1, 10, 100, 1000):
    # Average over independent keys so the monotone trend is not hidden by noise.
    keys = jax.random.split(jax.random.key(7), 8)
    bounds = jax.vmap(lambda kk: jit_iwae_bound(ppca_apply, params, x, kk, num_samples=k))(keys).mean(0)
    gaps.append(float(np.mean(log_px - bounds)))
  assert all(g > 0 for g in gaps), gaps
  assert gaps[0] > gaps[1] > gaps[2] > gaps[3], gaps
  assert gaps[-1] < 0.1 * gaps[0], gaps


def test_exact_posterior_makes_every_bound_equal_log_px():
  params = exact_posterior_params(ppca_params(orthogonal=True))
  x, key = data(), jax.random.key(1)
  log_px = exact_log_px(params, x)
  log_w = jit_log_importance_weights(ppca_apply, params, x, key, num_samples=7)
  np.testing.assert_allclose(np.asarray(log_w), np.broadcast_to(log_px[:, None], log_w.shape), atol=2e-3)
  # With the closed-form KL the ELBO equals log p(x) in expectation, not per sample.
  np.testing.assert_allclose(jit_elbo(ppca_apply, params, x, key, num_samples=20_000), log_px, atol=0.05)
  np.testing.assert_allclose(jit_iwae_bound(ppca_apply, params, x, key, num_samples=5), log_px, atol=2e-3)


def test_iwae_one_sample_equals_elbo_in_expectation():
  params, x, key = ppca_params(), data(n=4), jax.random.key(6)
  log_w = np.asarray(vae.log_importance_weights(ppca_apply, params, x, key, 20_000))
  # IWAE_1 is log w of the first sample, exactly.
  np.testing.assert_allclose(vae.iwae_bound(ppca_apply, params, x, key, 1), log_w[:, 0], rtol=1e-6)
  # Its mean over samples is the ELBO (here with the closed-form KL), within Monte Carlo error.
  elbo = np.asarray(vae.elbo(ppca_apply, params, x, jax.random.key(9), num_samples=20_000))
  std_err = log_w.std(axis=1) / np.sqrt(log_w.shape[1])
  assert np.all(np.abs(log_w.mean(axis=1) - elbo) < 5 * std_err + 1e-3), (log_w.mean(1), elbo, std_err)


def test_chunked_iwae_equals_unchunked():
  params, x, key = ppca_params(), data(n=6), jax.random.key(2)
  full = vae.iwae_bound(ppca_apply, params, x, key, 50)
  for chunk in (7, 10, 50):
    np.testing.assert_allclose(vae.iwae_bound(ppca_apply, params, x, key, 50, chunk_size=chunk), full,
                               rtol=1e-5)


def test_per_example_keys_make_bounds_independent_of_batch_composition():
  params, x, key = ppca_params(), data(n=8), jax.random.key(3)
  from gen_jax.keys import fold_in_indices
  keys = fold_in_indices(key, jnp.arange(100, 108))
  whole = vae.elbo(ppca_apply, params, x, keys)
  halves = jnp.concatenate([vae.elbo(ppca_apply, params, x[:4], keys[:4]),
                            vae.elbo(ppca_apply, params, x[4:], keys[4:])])
  np.testing.assert_allclose(whole, halves, rtol=1e-6)


def test_legacy_and_typed_keys_give_the_same_bound():
  params, x = ppca_params(), data(n=4)
  typed = vae.elbo(ppca_apply, params, x, jax.random.key(5))
  legacy = vae.elbo(ppca_apply, params, x, jax.random.PRNGKey(5))
  np.testing.assert_allclose(typed, legacy)


def test_reparameterized_gradients_match_finite_differences():
  with jax.enable_x64(True):
    params = jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), ppca_params())
    x, key = jnp.asarray(data(n=4), jnp.float64), jax.random.key(4)
    for bound in (lambda p: vae.elbo(ppca_apply, p, x, key, 3).mean(),
                  lambda p: vae.iwae_bound(ppca_apply, p, x, key, 5).mean()):
      check_grads(jax.jit(bound), (params,), order=1, modes=["rev"], eps=1e-5, atol=1e-5, rtol=1e-5)


class BoundVariantsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_bounds_run_under_jit_and_vmap(self):
    params, x = ppca_params(), data(n=6)
    elbo_fn = self.variant(lambda p, xb, k: vae.elbo(ppca_apply, p, xb, k, 2))
    iwae_fn = self.variant(lambda p, xb, k: vae.iwae_bound(ppca_apply, p, xb, k, 4))
    for fn in (elbo_fn, iwae_fn):
      out = fn(params, x, jax.random.key(0))
      chex.assert_shape(out, (6,))
      chex.assert_type(out, jnp.float32)
      chex.assert_tree_all_finite(out)
      stacked = jax.vmap(fn, in_axes=(None, 0, 0))(params, x.reshape(2, 3, DATA_DIM),
                                                  jax.random.split(jax.random.key(1), 2))
      chex.assert_shape(stacked, (2, 3))

  def test_bad_key_shape_is_reported(self):
    with pytest.raises(ValueError, match="per-example keys"):
      vae.elbo(ppca_apply, ppca_params(), data(n=4), jax.random.split(jax.random.key(0), 3))


def test_reparameterize_has_the_right_moments():
  mean, log_var = jnp.array([1.0, -2.0]), jnp.array([0.0, math.log(4.0)])
  keys = jax.random.split(jax.random.key(0), 200_000)
  z = jax.vmap(lambda k: vae.reparameterize(k, mean, log_var))(keys)
  np.testing.assert_allclose(z.mean(0), mean, atol=0.02)
  np.testing.assert_allclose(z.var(0), jnp.exp(log_var), rtol=0.02)
