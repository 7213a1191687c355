r"""Gaussian mixtures p(x) = Σ_k π_k N(x; μ_k, Σ_k) (seed 004's p(x) = Σ_z p(x | z) π_z) fitted
by EM, in scikit-learn's conventions so that one iteration here is one of
`sklearn.mixture.GaussianMixture`.

E-step: r_nk = π_k N(x_n; μ_k, Σ_k) / Σ_j π_j N(x_n; μ_j, Σ_j), and the mean log-likelihood
(1/N) Σ_n log Σ_k π_k N(x_n; μ_k, Σ_k) of the parameters before the M-step.
M-step: n_k = Σ_n r_nk + 10 ε, π_k = n_k / Σ_j n_j, μ_k = Σ_n r_nk x_n / n_k and
Σ_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / n_k + reg_covar I ("full"); the diagonal of that
("diag"), its mean over dimensions ("spherical"), or Σ_k n_k Σ_k / Σ_k n_k shared ("tied").

The M-step needs only the sufficient statistics n_k, s_k = Σ_n r_nk (x_n − c_k) and
S_k = Σ_n r_nk (x_n − c_k)(x_n − c_k)ᵀ (the diagonal for diag/spherical), taken about the
previous means c_k so that float32 sums keep their precision. They are sums over examples, so
they can be taken over chunks, devices and hosts and added: `statistics` over any part of the
data, `m_step` from their total.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, NamedTuple, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

LOG_2PI = math.log(2.0 * math.pi)
# scikit-learn adds 10 machine epsilons to every n_k (so an empty component divides by > 0).
COUNT_EPS_FACTOR = 10.0


@flax.struct.dataclass
class GaussianMixture:
  """weights (K,), means (K, D) and covariances shaped as scikit-learn's for the type
  ("full": (K, D, D), "diag": (K, D), "spherical": (K,), "tied": (D, D))."""
  weights: jax.Array
  means: jax.Array
  covariances: jax.Array
  covariance_type: str = flax.struct.field(pytree_node=False, default="full")

  @property
  def num_components(self) -> int:
    return self.means.shape[-2]

  @property
  def dim(self) -> int:
    return self.means.shape[-1]


class Statistics(NamedTuple):
  """Sums over examples (weighted by a 0/1 mask): counts n_k (K,), s_k (K, D) and S_k
  ((K, D, D) for full/tied, (K, D) for diag/spherical) about the shifts c_k (the previous
  means), the log-likelihood sum and the number of examples."""
  counts: jax.Array
  first: jax.Array
  second: jax.Array
  log_likelihood: jax.Array
  num_examples: jax.Array


def _full_precision_cholesky(cov):
  """P_k = L_k⁻ᵀ for Σ_k = L_k L_kᵀ (upper triangular, P_k P_kᵀ = Σ_k⁻¹; scikit-learn's
  `precisions_cholesky_`)."""
  eye = jnp.eye(cov.shape[-1], dtype=cov.dtype)

  def one(c):
    return jax.scipy.linalg.solve_triangular(jnp.linalg.cholesky(c), eye, lower=True).T

  # One component at a time (lax.map): the batched Cholesky and triangular solve hung XLA:CPU's
  # all-reduce in a step sharded over 4 emulated devices on 2 cores (64-D components, the
  # rendezvous timed out with 2 of 4 devices arrived); one at a time they do not.
  return jax.lax.map(one, cov)


def _diag_log_density(x, means, precisions):
  """−½ Σ_d (x_d − μ_kd)² λ_kd for precisions λ (K, D), as three matmuls (N, K)."""
  return -0.5 * (jnp.sum(means ** 2 * precisions, axis=1)[None, :]
                 - 2.0 * x @ (means * precisions).T + (x ** 2) @ precisions.T)


# Per-component loops are `lax.map`s of plain 2-D matmuls: on XLA:CPU, at D = 64 they ran 3x
# (the Mahalanobis terms) and 4.7x (the scatter) faster than batched (N, K, D) einsums, and hold
# no (N, K, D) array. At small D the work per component is elementwise and a loop is slower, so
# up to VECTORIZED_MAX_DIM the components are vectorized (lax.map's batch_size = K); statistics
# of 200,000 points, loop against vectorized: 40.0 against 19.6 ms at D = 2, 26.4 against 21.3 at
# D = 8, 51.1 against 63.6 at D = 16 (README, "Gaussian mixtures").
VECTORIZED_MAX_DIM = 8


def _per_component(fn, xs, dim: int):
  num_components = jax.tree.leaves(xs)[0].shape[0]
  return jax.lax.map(fn, xs, batch_size=num_components if dim <= VECTORIZED_MAX_DIM else None)


def _full_log_density(x, means, prec_chol):
  """−½ ‖(x − μ_k)ᵀ P_k‖² for P (K, D, D), (N, K)."""

  def one(args):
    mean, p = args
    y = (x - mean) @ p
    return -0.5 * jnp.sum(y * y, axis=-1)

  return _per_component(one, (means, prec_chol), x.shape[-1]).T


def _tied_log_density(x, means, prec_chol):
  return _per_component(lambda mean: -0.5 * jnp.sum(((x - mean) @ prec_chol) ** 2, axis=-1), means,
                        x.shape[-1]).T


def _outer_scatter(weighted, diff):
  """Σ_n r_n (x_n − c)(x_n − c)ᵀ from weighted = r (x − c) and diff = x − c, (D, D)."""
  return weighted.T @ diff


def _diag_scatter(weighted, diff):
  return jnp.sum(weighted * diff, axis=0)


def _full_from_moments(second, counts, delta, reg):
  cov = second / counts[:, None, None] - delta[:, :, None] * delta[:, None, :]
  return cov + reg * jnp.eye(cov.shape[-1], dtype=cov.dtype)


def _diag_from_moments(second, counts, delta, reg):
  return second / counts[:, None] - delta ** 2 + reg


def _spherical_from_moments(second, counts, delta, reg):
  return jnp.mean(_diag_from_moments(second, counts, delta, reg), axis=-1)


def _tied_from_moments(second, counts, delta, reg):
  """Σ = Σ_k (S_k − n_k δ_k δ_kᵀ) / Σ_k n_k + reg I (scikit-learn's tied estimate)."""
  scatter = jnp.sum(second, axis=0) - jnp.einsum("k,kd,ke->de", counts, delta, delta)
  cov = scatter / jnp.sum(counts)
  return cov + reg * jnp.eye(cov.shape[-1], dtype=cov.dtype)


@dataclasses.dataclass(frozen=True)
class CovarianceType:
  """One covariance structure: its log-density kernel, its statistics and its M-step."""
  name: str
  # (covariances, D) -> (per-component log det of the precision's Cholesky factor (K,) or (),
  #                      the parameters the log-density kernel takes)
  precision: Callable
  # (x (N, D), means, kernel parameters) -> (N, K) −½ Mahalanobis distances
  log_density: Callable
  # (r (x − c) (N, D), x − c (N, D)) -> one component's second statistic S_k
  scatter: Callable
  # (S, n, δ = s / n, reg_covar) -> covariances
  from_moments: Callable
  # (K, D) -> free parameters of the covariances
  num_covariance_parameters: Callable[[int, int], int]
  # covariances -> the factors A with A_k A_kᵀ = Σ_k (Cholesky factors, or standard deviations)
  noise_scales: Callable
  # (factors, component z, ε (D,)) -> A_z ε
  scale_noise: Callable
  # covariances (numpy, float64) -> the smallest eigenvalue of each covariance matrix, (K,) or (1,)
  smallest_eigenvalues: Callable
  # (covariances, K, D) -> the (K, D, D) matrices
  to_full: Callable


def _triangular_log_det(factor):
  """log |P| = Σ_d log P_dd of triangular P (..., D, D)."""
  return jnp.sum(jnp.log(jnp.diagonal(factor, axis1=-2, axis2=-1)), axis=-1)


def _full_precision(cov, dim):
  prec_chol = _full_precision_cholesky(cov)
  return _triangular_log_det(prec_chol), prec_chol


def _tied_precision(cov, dim):
  log_det, prec_chol = _full_precision(cov[None], dim)
  return log_det[0], prec_chol[0]


def _diag_precision(cov, dim):
  return -0.5 * jnp.sum(jnp.log(cov), axis=-1), 1.0 / cov


def _spherical_precision(cov, dim):
  return -0.5 * dim * jnp.log(cov), 1.0 / cov


def _matrix_eigenvalue_floor(cov):
  return np.linalg.eigvalsh(cov.reshape((-1,) + cov.shape[-2:])).min(axis=-1)


COVARIANCE_TYPES: Mapping[str, CovarianceType] = {
    "full": CovarianceType(
        "full", _full_precision, _full_log_density, _outer_scatter, _full_from_moments,
        lambda k, d: k * d * (d + 1) // 2,
        lambda cov: jax.lax.map(jnp.linalg.cholesky, cov), lambda a, z, eps: a[z] @ eps,
        _matrix_eigenvalue_floor, lambda cov, k, d: cov),
    "diag": CovarianceType(
        "diag", _diag_precision, _diag_log_density, _diag_scatter, _diag_from_moments,
        lambda k, d: k * d, jnp.sqrt, lambda a, z, eps: a[z] * eps,
        lambda cov: cov.min(axis=-1), lambda cov, k, d: jax.vmap(jnp.diag)(cov)),
    "spherical": CovarianceType(
        "spherical", _spherical_precision,
        lambda x, means, prec: _diag_log_density(x, means, jnp.broadcast_to(prec[:, None], means.shape)),
        _diag_scatter, _spherical_from_moments, lambda k, d: k,
        jnp.sqrt, lambda a, z, eps: a[z] * eps, lambda cov: cov,
        lambda cov, k, d: cov[:, None, None] * jnp.eye(d, dtype=cov.dtype)),
    "tied": CovarianceType(
        "tied", _tied_precision, _tied_log_density, _outer_scatter, _tied_from_moments,
        lambda k, d: d * (d + 1) // 2,
        jnp.linalg.cholesky, lambda a, z, eps: a @ eps, _matrix_eigenvalue_floor,
        lambda cov, k, d: jnp.broadcast_to(cov, (k, d, d))),
}


def covariance_type_of(name: str) -> CovarianceType:
  if name not in COVARIANCE_TYPES:
    raise ValueError(f"unknown covariance_type {name!r}: use one of {sorted(COVARIANCE_TYPES)}")
  return COVARIANCE_TYPES[name]


def as_full_covariances(gmm: GaussianMixture) -> jax.Array:
  """Σ_k as (K, D, D) matrices, whatever the type."""
  return covariance_type_of(gmm.covariance_type).to_full(gmm.covariances, gmm.num_components, gmm.dim)


def _log_gaussians(kind: CovarianceType, x, means, log_det, kernel):
  """log N(x_n; μ_k, Σ_k) = −½ D log 2π + log|P_k| − ½ (Mahalanobis distance)², (N, K)."""
  return kind.log_density(x, means, kernel) - 0.5 * x.shape[-1] * LOG_2PI + log_det


def full_log_gaussians(x: jax.Array, means: jax.Array, prec_chol: jax.Array) -> jax.Array:
  """log N(x_n; μ_k, Σ_k) from precision Cholesky factors P_k (P_k P_kᵀ = Σ_k⁻¹), (N, K)."""
  return _log_gaussians(COVARIANCE_TYPES["full"], x, means, _triangular_log_det(prec_chol), prec_chol)


def component_log_probs(gmm: GaussianMixture, x: jax.Array) -> jax.Array:
  """log π_k + log N(x_n; μ_k, Σ_k), (N, K)."""
  kind = covariance_type_of(gmm.covariance_type)
  log_det, kernel = kind.precision(gmm.covariances, gmm.dim)
  return _log_gaussians(kind, x, gmm.means, log_det, kernel) + jnp.log(gmm.weights)


def gmm_log_prob(gmm: GaussianMixture, x: jax.Array) -> jax.Array:
  """log p(x_n) = log Σ_k π_k N(x_n; μ_k, Σ_k) in nats, (N,)."""
  return jax.nn.logsumexp(component_log_probs(gmm, x), axis=-1)


def responsibilities(gmm: GaussianMixture, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(r (N, K), log p(x_n) (N,)): the E-step."""
  log_joint = component_log_probs(gmm, x)
  log_px = jax.nn.logsumexp(log_joint, axis=-1)
  return jnp.exp(log_joint - log_px[:, None]), log_px


def _moments_about(kind: CovarianceType, x, resp, shifts):
  """(s (K, D), S) about the shifts c_k: Σ_n r_nk (x_n − c_k) and the type's scatter."""

  def one(args):
    r, shift = args
    diff = x - shift
    weighted = diff * r[:, None]
    return jnp.sum(weighted, axis=0), kind.scatter(weighted, diff)

  return _per_component(one, (resp.T, shifts), x.shape[-1])


def statistics(gmm: GaussianMixture, x: jax.Array, mask: Optional[jax.Array] = None) -> Statistics:
  """The E-step's sufficient statistics of the rows of x (those with mask 1), taken about the
  current means."""
  kind = covariance_type_of(gmm.covariance_type)
  mask = jnp.ones(x.shape[:1], x.dtype) if mask is None else mask.astype(x.dtype)
  resp, log_px = responsibilities(gmm, x)
  resp = resp * mask[:, None]
  first, second = _moments_about(kind, x, resp, gmm.means)
  return Statistics(jnp.sum(resp, axis=0), first, second, jnp.sum(log_px * mask), jnp.sum(mask))


def chunked_statistics(gmm: GaussianMixture, x: jax.Array, chunk_size: Optional[int] = None,
                       mask: Optional[jax.Array] = None) -> Statistics:
  """`statistics` summed over chunks of `chunk_size` rows (a `lax.scan`), so the (N, K, D)
  intermediates never exceed (chunk_size, K, D); rows are padded with mask 0."""
  n = x.shape[0]
  mask = jnp.ones((n,), x.dtype) if mask is None else mask.astype(x.dtype)
  if chunk_size is None or chunk_size >= n:
    return statistics(gmm, x, mask)
  num_chunks = -(-n // chunk_size)
  pad = num_chunks * chunk_size - n
  x = jnp.pad(x, ((0, pad), (0, 0))).reshape(num_chunks, chunk_size, -1)
  mask = jnp.pad(mask, (0, pad)).reshape(num_chunks, chunk_size)
  zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: statistics(gmm, x[0], mask[0])))

  def add(total, chunk):
    return jax.tree.map(jnp.add, total, statistics(gmm, *chunk)), None

  return jax.lax.scan(add, zero, (x, mask))[0]


def m_step(stats: Statistics, gmm: GaussianMixture, reg_covar: float) -> GaussianMixture:
  """The new mixture from the statistics' totals (taken about `gmm.means`)."""
  kind = covariance_type_of(gmm.covariance_type)
  counts = stats.counts + COUNT_EPS_FACTOR * jnp.finfo(stats.counts.dtype).eps
  delta = stats.first / counts[:, None]
  return GaussianMixture(counts / jnp.sum(counts), gmm.means + delta,
                         kind.from_moments(stats.second, counts, delta, reg_covar),
                         gmm.covariance_type)


def em_step(gmm: GaussianMixture, x: jax.Array, reg_covar: float,
            chunk_size: Optional[int] = None) -> tuple[GaussianMixture, jax.Array]:
  """One EM iteration on x: (new mixture, mean log-likelihood of x under the old one)."""
  stats = chunked_statistics(gmm, x, chunk_size)
  return m_step(stats, gmm, reg_covar), stats.log_likelihood / stats.num_examples


def from_responsibilities(x: jax.Array, resp: jax.Array, covariance_type: str,
                          reg_covar: float, mask: Optional[jax.Array] = None) -> GaussianMixture:
  """The M-step from given responsibilities (scikit-learn's `_estimate_gaussian_parameters`,
  used to start EM from a hard assignment)."""
  dtype = x.dtype
  start = GaussianMixture(jnp.ones(resp.shape[1], dtype), jnp.zeros((resp.shape[1], x.shape[1]), dtype),
                          jnp.zeros((), dtype), covariance_type)
  mask = jnp.ones(x.shape[:1], dtype) if mask is None else mask.astype(dtype)
  resp = resp.astype(dtype) * mask[:, None]
  first, second = _moments_about(covariance_type_of(covariance_type), x, resp, start.means)
  stats = Statistics(jnp.sum(resp, 0), first, second, jnp.zeros((), dtype), jnp.sum(mask))
  return m_step(stats, start, reg_covar)


def num_parameters(covariance_type: str, num_components: int, dim: int) -> int:
  """Free parameters: K − 1 weights, K·D means and the covariances' (scikit-learn's count)."""
  kind = covariance_type_of(covariance_type)
  return num_components - 1 + num_components * dim + kind.num_covariance_parameters(num_components, dim)


def information_criteria(total_log_likelihood: float, num_points: int, num_params: int) -> dict:
  """{"bic": −2 Σ_n log p(x_n) + p log N, "aic": −2 Σ_n log p(x_n) + 2p} (lower is better)
  from the summed log-likelihood, so a split read in batches needs one pass."""
  return {"bic": float(-2.0 * total_log_likelihood + num_params * np.log(num_points)),
          "aic": float(-2.0 * total_log_likelihood + 2.0 * num_params)}


def _criteria(gmm: GaussianMixture, x) -> dict:
  return information_criteria(float(jnp.sum(gmm_log_prob(gmm, x))), x.shape[0],
                              num_parameters(gmm.covariance_type, gmm.num_components, gmm.dim))


def bic(gmm: GaussianMixture, x) -> float:
  """Bayesian information criterion −2 Σ_n log p(x_n) + p log N (lower is better)."""
  return _criteria(gmm, x)["bic"]


def aic(gmm: GaussianMixture, x) -> float:
  """Akaike information criterion −2 Σ_n log p(x_n) + 2p (lower is better)."""
  return _criteria(gmm, x)["aic"]


def sample(gmm: GaussianMixture, keys: jax.Array) -> jax.Array:
  """One draw x ~ p per key: z ~ Categorical(π), x = μ_z + A_z ε, A_z A_zᵀ = Σ_z, ε ~ N(0, I)
  (draw i from keys[i] alone). (len(keys), D)."""
  kind = covariance_type_of(gmm.covariance_type)
  factors = kind.noise_scales(gmm.covariances)

  def one(key):
    key_z, key_x = jax.random.split(key)
    z = jax.random.categorical(key_z, jnp.log(gmm.weights))
    return gmm.means[z] + kind.scale_noise(factors, z, jax.random.normal(key_x, (gmm.dim,), gmm.means.dtype))

  return jax.vmap(one)(keys)


def empirical_rank_deficient(gmm: GaussianMixture, reg_covar: float, rtol: float = 1e-3) -> np.ndarray:
  """Components whose covariance is positive definite only through reg_covar: the smallest
  eigenvalue of Σ_k is within (1 + rtol) reg_covar (so Σ_k − reg_covar I is singular). (K,)
  bool for per-component types, (1,) for tied."""
  smallest = covariance_type_of(gmm.covariance_type).smallest_eigenvalues(
      np.asarray(gmm.covariances, np.float64))
  return np.atleast_1d(smallest <= reg_covar * (1.0 + rtol))
