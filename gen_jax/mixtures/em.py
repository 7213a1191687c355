"""EM for Gaussian mixtures: initialisation (k-means++, k-means), `fit_gmm` (one compiled
`lax.while_loop`, restarts in parallel with `vmap`, data optionally sharded over a mesh with
the statistics summed across devices and hosts)."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gen_jax.mixtures import gmm as gmm_lib
from gen_jax.mixtures.gmm import GaussianMixture

KMEANS_MAX_ITERS = 100
KMEANS_TOL = 1e-4   # scikit-learn's KMeans tol: of the mean squared centre shift, relative to the data's variance


def check_data(x, num_components: int, covariance_type: str) -> np.ndarray:
  """Raises ValueError, in one line, on x a mixture cannot be fitted to."""
  gmm_lib.covariance_type_of(covariance_type)
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"x must have shape (num_points, dim), got shape {x.shape}: reshape it, e.g. "
                     "x.reshape(len(x), -1)")
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f"x must be floating point, got dtype {x.dtype}: convert it "
                     "with x.astype(np.float32)")
  if num_components < 1 or num_components > x.shape[0]:
    raise ValueError(f"num_components={num_components} must be between 1 and the number of "
                     f"points ({x.shape[0]})")
  finite = np.isfinite(x)
  if not finite.all():
    bad = np.argwhere(~finite)[0]
    raise ValueError(f"x has {int((~finite).sum())} NaN or inf values (the first at row {bad[0]}, "
                     f"column {bad[1]}): drop or impute those rows")
  return x


def _squared_distances(x, centres):
  return (jnp.sum(x ** 2, 1)[:, None] - 2.0 * x @ centres.T + jnp.sum(centres ** 2, 1)[None, :])


def _nearest_one_hot(x, centres):
  """Each row's nearest centre, one-hot (N, K): k-means' assignment step."""
  return jax.nn.one_hot(jnp.argmin(_squared_distances(x, centres), 1), centres.shape[0], dtype=x.dtype)


def kmeans_plusplus(x: jax.Array, num_components: int, key: jax.Array) -> jax.Array:
  """Greedy k-means++ centres (Arthur & Vassilvitskii; scikit-learn's variant): the first a
  uniform point, each next the best of 2 + ⌊log K⌋ candidates drawn ∝ D(x)², the squared
  distance to the nearest centre so far. (K, D)."""
  n = x.shape[0]
  num_trials = 2 + int(math.log(num_components))
  key_first, key_rest = jax.random.split(key)
  first = x[jax.random.randint(key_first, (), 0, n)]
  closest = jnp.maximum(jnp.sum((x - first) ** 2, 1), 0.0)
  centres = jnp.zeros((num_components, x.shape[1]), x.dtype).at[0].set(first)

  def add(k, carry):
    centres, closest = carry
    candidates = jax.random.categorical(jax.random.fold_in(key_rest, k),
                                        jnp.log(jnp.maximum(closest, 1e-30)), shape=(num_trials,))
    distances = jnp.minimum(closest[None], jnp.maximum(_squared_distances(x, x[candidates]).T, 0.0))
    best = jnp.argmin(jnp.sum(distances, 1))
    return centres.at[k].set(x[candidates[best]]), distances[best]

  return jax.lax.fori_loop(1, num_components, add, (centres, closest))[0]


def kmeans(x: jax.Array, centres: jax.Array, max_iters: int = KMEANS_MAX_ITERS,
           tol: float = KMEANS_TOL) -> jax.Array:
  """Lloyd's iterations from `centres` until the squared centre shift falls below
  tol × the mean per-dimension variance of x (scikit-learn's criterion) or max_iters."""
  threshold = tol * jnp.mean(jnp.var(x, axis=0))

  def lloyd(carry):
    centres, _, i = carry
    one_hot = _nearest_one_hot(x, centres)
    counts = jnp.sum(one_hot, 0)
    new = jnp.where(counts[:, None] > 0, one_hot.T @ x / jnp.maximum(counts, 1)[:, None], centres)
    return new, jnp.sum((new - centres) ** 2), i + 1

  def running(carry):
    return (carry[1] > threshold) & (carry[2] < max_iters)

  return jax.lax.while_loop(running, lloyd, (centres, jnp.asarray(jnp.inf, x.dtype), 0))[0]


def _hard_assignment(x, centres, covariance_type, reg_covar):
  return gmm_lib.from_responsibilities(x, _nearest_one_hot(x, centres), covariance_type, reg_covar)


def _kmeans_plusplus_init(x, num_components, key, covariance_type, reg_covar):
  return _hard_assignment(x, kmeans_plusplus(x, num_components, key), covariance_type, reg_covar)


def _kmeans_init(x, num_components, key, covariance_type, reg_covar):
  return _hard_assignment(x, kmeans(x, kmeans_plusplus(x, num_components, key)), covariance_type, reg_covar)


def _random_init(x, num_components, key, covariance_type, reg_covar):
  resp = jax.random.uniform(key, (x.shape[0], num_components), x.dtype)
  return gmm_lib.from_responsibilities(x, resp / jnp.sum(resp, 1, keepdims=True), covariance_type, reg_covar)


# Each: (x, K, key, covariance_type, reg_covar) -> the starting mixture, the M-step of a first
# set of responsibilities: every point to its nearest k-means++ centre ("kmeans++"), to its
# k-means cluster ("kmeans", Lloyd from k-means++ seeds), or random soft ones ("random").
# (scikit-learn's own "k-means++" starts from the K centre points alone, so with covariances
# reg_covar·I; here every point is assigned.)
INITIALIZERS: Mapping[str, Callable] = {
    "kmeans++": _kmeans_plusplus_init,
    "kmeans": _kmeans_init,
    "random": _random_init,
}


def initialize(x, num_components: int, key, covariance_type: str = "full", reg_covar: float = 1e-6,
               method: str = "kmeans++") -> GaussianMixture:
  if method not in INITIALIZERS:
    raise ValueError(f"unknown init method {method!r}: use one of {sorted(INITIALIZERS)}")
  return INITIALIZERS[method](jnp.asarray(x), num_components, key, covariance_type, reg_covar)


def sharded_statistics(mesh: Mesh, axis, chunk_size: Optional[int] = None) -> Callable:
  """(gmm, x, mask) -> the statistics of the rows of x sharded along `axis` of `mesh`: each
  device sums its own rows in chunks, then one psum across devices (and hosts)."""
  spec = PartitionSpec(axis)

  def local(gmm, x, mask):
    stats = gmm_lib.chunked_statistics(gmm, x, chunk_size, mask)
    return jax.tree.map(lambda v: jax.lax.psum(v, axis), stats)

  return jax.shard_map(local, mesh=mesh, in_specs=(PartitionSpec(), spec, spec), out_specs=PartitionSpec())


@functools.partial(jax.jit, static_argnames=("num_examples", "max_iters", "chunk_size", "mesh", "axis"))
def run_em(start: GaussianMixture, x, mask, tol, reg_covar, *, num_examples: int, max_iters: int,
           chunk_size: Optional[int] = None, mesh: Optional[Mesh] = None, axis=None):
  """EM from `start` on the rows of x with mask 1 (x sharded along `axis` of `mesh` when given):
  (mixture, mean log-likelihoods (max_iters,) with 0 after the last iteration, iterations
  run, converged). Stops when the mean log-likelihood changes by less than tol. Compiled once
  per shape and static setting."""
  statistics_fn = sharded_statistics(mesh, axis, chunk_size) if mesh is not None else \
      (lambda gmm, x, mask: gmm_lib.chunked_statistics(gmm, x, chunk_size, mask))

  def body(carry):
    gmm, lls, i, _ = carry
    stats = statistics_fn(gmm, x, mask)
    ll = stats.log_likelihood / num_examples
    previous = jnp.where(i > 0, lls[jnp.maximum(i - 1, 0)], -jnp.inf)
    return gmm_lib.m_step(stats, gmm, reg_covar), lls.at[i].set(ll), i + 1, jnp.abs(ll - previous) < tol

  def running(carry):
    return (carry[2] < max_iters) & ~carry[3]

  lls = jnp.zeros((max_iters,), x.dtype)
  return jax.lax.while_loop(running, body, (start, lls, 0, jnp.asarray(False)))


@functools.partial(jax.jit, static_argnames=("num_components", "covariance_type", "method"))
def initialize_many(x, keys, reg_covar, *, num_components: int, covariance_type: str, method: str):
  """`initialize` for each key (vmap): the starts of parallel restarts."""
  return jax.vmap(lambda k: initialize(x, num_components, k, covariance_type, reg_covar, method))(keys)


def fit_gmm(x, num_components: int, key, covariance_type: str = "full", max_iters: int = 100,
            tol: float = 1e-3, reg_covar: float = 1e-6, init=None, *, n_init: int = 1,
            init_method: str = "kmeans++", chunk_size: Optional[int] = None,
            mesh: Optional[Mesh] = None, data_axis=None):
  """EM from `init` = (weights, means, covariances), or from the best (highest final mean
  log-likelihood) of `n_init` starts by `init_method` run in parallel (vmap). Returns
  (gmm, log_likelihoods): log_likelihoods[i] is the mean log-likelihood of x before iteration
  i's M-step; iterations stop when it changes by less than tol, or after max_iters.
  With `mesh`, x is sharded along `data_axis` (default: every mesh axis) and each iteration's
  statistics are summed across devices; `chunk_size` bounds each device's (rows, K, D)
  intermediates. Components held positive definite only by reg_covar are warned about."""
  x = check_data(x, num_components, covariance_type)
  if max_iters < 1:
    raise ValueError(f"max_iters={max_iters} must be at least 1")
  if n_init < 1:
    raise ValueError(f"n_init={n_init} must be at least 1")
  x = points = jnp.asarray(x)
  n = x.shape[0]
  mask = jnp.ones((n,), x.dtype)
  axis = None
  if mesh is not None:
    axis = tuple(mesh.axis_names) if data_axis is None else data_axis
    devices = math.prod(mesh.shape[a] for a in ((axis,) if isinstance(axis, str) else axis))
    pad = -n % devices
    sharding = NamedSharding(mesh, PartitionSpec(axis))
    x = jax.device_put(jnp.pad(x, ((0, pad), (0, 0))), sharding)
    mask = jax.device_put(jnp.pad(mask, (0, pad)), sharding)
  run = functools.partial(run_em, num_examples=n, max_iters=int(max_iters), chunk_size=chunk_size,
                          mesh=mesh, axis=axis)
  tol_array, reg = jnp.asarray(tol, x.dtype), jnp.asarray(reg_covar, x.dtype)
  if init is not None:
    weights, means, covariances = (jnp.asarray(v, x.dtype) for v in init)
    gmm, lls, iters, converged = run(GaussianMixture(weights, means, covariances, covariance_type),
                                     x, mask, tol_array, reg)
  else:
    starts = initialize_many(points, jax.random.split(key, n_init), reg, num_components=num_components,
                             covariance_type=covariance_type, method=init_method)
    gmms, lls_all, iters_all, conv_all = jax.vmap(run, in_axes=(0, None, None, None, None))(
        starts, x, mask, tol_array, reg)
    final = jnp.take_along_axis(lls_all, jnp.maximum(iters_all - 1, 0)[:, None], 1)[:, 0]
    best = int(jnp.argmax(jnp.where(jnp.isnan(final), -jnp.inf, final)))  # a start gone NaN loses
    gmm = jax.tree.map(lambda v: v[best], gmms)
    lls, iters, converged = lls_all[best], iters_all[best], conv_all[best]
  iters = int(iters)
  if not bool(converged) and tol > 0:
    warnings.warn(f"EM did not converge in max_iters={max_iters} iterations (tol={tol}): raise "
                  "max_iters or tol", stacklevel=2)
  warn_if_rescued(gmm, reg_covar)
  return gmm, lls[:iters]


def warn_if_rescued(gmm: GaussianMixture, reg_covar: float):
  """Warns (one line) when some covariance is positive definite only through reg_covar, and
  raises when a covariance is not positive definite at all (reg_covar too small)."""
  cov = np.asarray(gmm.covariances, np.float64)
  if not np.all(np.isfinite(cov)) or not np.all(np.isfinite(np.asarray(gmm.means))):
    raise ValueError(f"EM produced non-finite parameters: the data have a singular covariance and "
                     f"reg_covar={reg_covar} is too small to keep it positive definite; raise reg_covar")
  rescued = gmm_lib.empirical_rank_deficient(gmm, reg_covar)
  if rescued.any():
    which = "the tied covariance" if gmm.covariance_type == "tied" else \
        f"components {np.flatnonzero(rescued).tolist()}"
    warnings.warn(f"{which} of this {gmm.covariance_type} mixture had a singular empirical covariance "
                  f"(collapsed onto fewer than {gmm.dim} dimensions, e.g. duplicate points or a "
                  f"constant feature); reg_covar={reg_covar} added to the diagonal keeps it positive "
                  "definite. Raise reg_covar, use fewer components, or drop constant features.",
                  stacklevel=3)
