"""Sample-quality metrics on feature vectors: FID, KID, Inception score, improved precision/recall.

Pure functions of arrays (jit-able, dtype-following: pass float64 under
`jax.enable_x64` for the published precision of FID on wide features).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.keys import as_typed_key

KID_DEGREE = 3
KID_COEF0 = 1.0
PRECISION_RECALL_K = 3
DEFAULT_KID_KEY_SEED = 0


def _sqrtm_trace_product(sigma1, sigma2):
  """tr sqrt(Σ1 Σ2) = Σ_i sqrt(λ_i(Σ1^½ Σ2 Σ1^½)) for symmetric PSD Σ1, Σ2."""
  eigvals, eigvecs = jnp.linalg.eigh(sigma1)
  root1 = (eigvecs * jnp.sqrt(jnp.clip(eigvals, 0.0))) @ eigvecs.T
  middle = root1 @ sigma2 @ root1
  middle = 0.5 * (middle + middle.T)
  return jnp.sum(jnp.sqrt(jnp.clip(jnp.linalg.eigvalsh(middle), 0.0)))


def frechet_distance(mu1, sigma1, mu2, sigma2):
  """d² = |μ1 − μ2|² + tr(Σ1) + tr(Σ2) − 2 tr sqrt(Σ1 Σ2)   (Heusel et al. 2017)."""
  diff = mu1 - mu2
  return (diff @ diff + jnp.trace(sigma1) + jnp.trace(sigma2)
          - 2.0 * _sqrtm_trace_product(sigma1, sigma2))


def feature_statistics(features):
  """(mean, unbiased covariance) of features (n, d)."""
  mu = jnp.mean(features, axis=0)
  centred = features - mu
  return mu, centred.T @ centred / (features.shape[0] - 1)


def fid_from_features(features1, features2):
  """Fréchet distance between Gaussians fitted to two feature sets."""
  return frechet_distance(*feature_statistics(features1), *feature_statistics(features2))


def polynomial_kernel(x, y):
  """k(x, y) = (x·y / d + 1)³."""
  return (x @ y.T / x.shape[-1] + KID_COEF0) ** KID_DEGREE


def mmd2_unbiased(x, y):
  """Unbiased MMD² with the cubic polynomial kernel (Bińkowski et al. 2018, eq. 3)."""
  m, n = x.shape[0], y.shape[0]
  k_xx, k_yy, k_xy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  sum_xx = (jnp.sum(k_xx) - jnp.trace(k_xx)) / (m * (m - 1))
  sum_yy = (jnp.sum(k_yy) - jnp.trace(k_yy)) / (n * (n - 1))
  return sum_xx + sum_yy - 2.0 * jnp.mean(k_xy)


def kid_from_features(features1, features2, num_subsets: int = 100, subset_size: int = 1000,
                      key=None):
  """KID: (mean, std) of unbiased MMD² over `num_subsets` random subsets of
  min(subset_size, n1, n2) examples drawn without replacement from each set."""
  size = min(subset_size, features1.shape[0], features2.shape[0])
  key = as_typed_key(jax.random.key(DEFAULT_KID_KEY_SEED) if key is None else key)

  def one_subset(k):
    k1, k2 = jax.random.split(k)
    x = features1[jax.random.permutation(k1, features1.shape[0])[:size]]
    y = features2[jax.random.permutation(k2, features2.shape[0])[:size]]
    return mmd2_unbiased(x, y)

  values = jax.lax.map(one_subset, jax.random.split(key, num_subsets))
  return jnp.mean(values), jnp.std(values)


def inception_score_from_logits(logits, num_splits: int = 10):
  """IS = exp(E_x KL(p(y|x) ‖ p(y))) on each of `num_splits` equal splits -> (mean, std)."""
  n = (logits.shape[0] // num_splits) * num_splits
  log_p = jax.nn.log_softmax(logits[:n], axis=-1).reshape(num_splits, -1, logits.shape[-1])
  log_marginal = jax.nn.logsumexp(log_p, axis=1, keepdims=True) - jnp.log(log_p.shape[1])
  kl = jnp.sum(jnp.exp(log_p) * (log_p - log_marginal), axis=-1)
  scores = jnp.exp(jnp.mean(kl, axis=1))
  return jnp.mean(scores), jnp.std(scores)


def pairwise_sq_distances(x, y):
  """||x_i − y_j||² as ||x_i||² + ||y_j||² − 2 x_i·y_j (N, M), floored at 0."""
  return jnp.maximum(jnp.sum(x * x, 1)[:, None] + jnp.sum(y * y, 1)[None, :] - 2.0 * x @ y.T, 0.0)


def knn_radii(features, k: int = PRECISION_RECALL_K):
  """Squared distance from each point to its k-th nearest other point."""
  d = pairwise_sq_distances(features, features)
  return jnp.sort(d, axis=1)[:, k]  # column 0 is the point itself


def coverage_fraction(manifold, radii, queries):
  """Fraction of queries inside at least one ball B(manifold_i, radius_i)."""
  d = pairwise_sq_distances(queries, manifold)
  return jnp.mean(jnp.any(d <= radii[None, :], axis=1))


def precision_recall(real_features, fake_features, k: int = PRECISION_RECALL_K):
  """Improved precision and recall (Kynkäänniemi et al. 2019): precision = share of fake
  samples inside the real manifold (k-NN balls), recall = share of real inside the fake one."""
  precision = coverage_fraction(real_features, knn_radii(real_features, k), fake_features)
  recall = coverage_fraction(fake_features, knn_radii(fake_features, k), real_features)
  return precision, recall
