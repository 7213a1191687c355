"""Gaussian mixtures under Gaussian noising: exact densities, scores and ε-predictors.

If x_0 ~ Σ_k π_k N(μ_k, Σ_k) and x_t = m x_0 + s ε, then
  x_t ~ Σ_k π_k N(m μ_k, m² Σ_k + s² I),
  ∇ log p_t(x) = Σ_k r_k(x) (m² Σ_k + s² I)^{-1} (m μ_k - x),  r_k the responsibilities,
and the optimal ε-predictor is ε*(x_t) = -s ∇ log p_t(x_t). These are the truths against
which samplers and likelihoods are tested, and drivers for them without a network.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from gen_jax.diffusion.gaussian import Schedule


@flax.struct.dataclass
class GaussianMixture:
  weights: jax.Array      # (K,)
  means: jax.Array        # (K, D)
  covariances: jax.Array  # (K, D, D)

  def noised(self, mean_scale, noise_std) -> "GaussianMixture":
    """The law of m x_0 + s ε (scalars m, s)."""
    eye = jnp.eye(self.means.shape[1], dtype=self.means.dtype)
    return GaussianMixture(self.weights, mean_scale * self.means,
                           mean_scale ** 2 * self.covariances + noise_std ** 2 * eye)

  def _component_log_probs(self, x):
    """(batch, K) log π_k N(x; μ_k, Σ_k)."""
    def one(mean, cov):
      return jax.scipy.stats.multivariate_normal.logpdf(x, mean, cov)
    return jax.vmap(one, out_axes=1)(self.means, self.covariances) + jnp.log(self.weights)

  def log_prob(self, x):
    return jax.nn.logsumexp(self._component_log_probs(x), axis=1)

  def score(self, x):
    """∇ log p(x) per row."""
    resp = jax.nn.softmax(self._component_log_probs(x), axis=1)            # (batch, K)
    precision_diff = jax.vmap(lambda m, c: jnp.linalg.solve(c, (m - x).T).T, out_axes=1)(
        self.means, self.covariances)                                      # (batch, K, D)
    return jnp.einsum("bk,bkd->bd", resp, precision_diff)

  def sample(self, key, num_samples: int):
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.choice(k_comp, self.weights.shape[0], (num_samples,), p=self.weights)
    chol = jnp.linalg.cholesky(self.covariances)[comp]
    z = jax.random.normal(k_noise, (num_samples, self.means.shape[1]), self.means.dtype)
    return self.means[comp] + jnp.einsum("bij,bj->bi", chol, z)


def eps_fn(mixture: GaussianMixture, schedule: Schedule):
  """The exact ε*(x_t, t) of a discrete schedule for data from `mixture`."""
  def fn(x, t):
    m = schedule.sqrt_alphas_cumprod[t][:, None]
    s = schedule.sqrt_one_minus_alphas_cumprod[t][:, None]
    # Rows may sit at different t: evaluate each row with its own noised mixture.
    per_row = jax.vmap(lambda xi, mi, si: mixture.noised(mi, si).score(xi[None])[0])(x, m[:, 0], s[:, 0])
    return -s * per_row
  return fn


def score_fn(mixture: GaussianMixture, sde):
  """The exact ∇ log p_t(x) of an SDE's marginals for data from `mixture`."""
  def fn(x, t):
    m, s = sde.marginal(t)
    return jax.vmap(lambda xi, mi, si: mixture.noised(mi, si).score(xi[None])[0])(x, m, s)
  return fn


def log_prob_at(mixture: GaussianMixture, sde, x, t: float):
  """log p_t(x) of an SDE's marginal at time t (a float)."""
  m, s = sde.marginal(jnp.asarray(t, x.dtype))
  return mixture.noised(m, s).log_prob(x)

