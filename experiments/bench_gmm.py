"""EM for Gaussian mixtures, gen_jax's `fit_gmm` against scikit-learn's GaussianMixture, as
comparisons of `python -m experiments.bench peers` (scikit-learn is a core dependency).

Both sides fit the same float32 data from the same start (k-means++ on the first 10,000
points: weights, means and covariances given to scikit-learn as weights_init, means_init and
precisions_init) for the same number of iterations (tol = 0), full covariances, reg_covar 1e-6.
A timing is one `fit` call of `steps` iterations, divided by `steps`; scikit-learn's includes
its input validation and gen_jax's its finiteness check and host-to-device copy.
- `gmm_2d`: K = 8 on 1,000,000 2-D points; `gmm_64d`: K = 10 on 100,000 64-D points.
- `gmm_scaling`: seconds per iteration for n = 10⁴, 10⁵, 10⁶ 2-D points (K = 8), and the peak
  resident memory of one 10-iteration fit at 10⁶ 2-D and 10⁵ 64-D points, each side in a
  fresh process (the peak above the process's resident size once its data exist).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import time
import warnings
from typing import Callable

import jax
import numpy as np

from gen_jax.mixtures import em, gmm as gmm_lib

INIT_POINTS = 10_000
REG_COVAR = 1e-6
# Rows per chunk of gen_jax's statistics: bounds the (rows, K, D) intermediates.
CHUNK_ROWS = 16_384
MEMORY_ITERATIONS = 10


def mixture_data(num_points: int, dim: int, num_components: int, seed: int = 0) -> np.ndarray:
  """Points from K unit Gaussians around centres drawn from N(0, 5² I)."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(scale=5.0, size=(num_components, dim))
  return (centres[rng.integers(num_components, size=num_points)]
          + rng.normal(size=(num_points, dim))).astype(np.float32)


def shared_start(x: np.ndarray, num_components: int):
  g = em.initialize(x[:INIT_POINTS], num_components, jax.random.key(0), "full", REG_COVAR, "kmeans++")
  return tuple(np.asarray(v) for v in (g.weights, g.means, g.covariances))


def gen_jax_fit(x, start, iterations: int):
  g, _ = em.fit_gmm(x, len(start[0]), None, "full", max_iters=iterations, tol=0.0,
                    reg_covar=REG_COVAR, init=start, chunk_size=CHUNK_ROWS)
  jax.block_until_ready(g)
  return g


def sklearn_fit(x, start, iterations: int):
  from sklearn.mixture import GaussianMixture
  weights, means, covariances = start
  model = GaussianMixture(len(weights), covariance_type="full", max_iter=iterations, tol=0.0,
                          reg_covar=REG_COVAR, weights_init=weights, means_init=means,
                          precisions_init=np.linalg.inv(covariances.astype(np.float64)))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")   # its ConvergenceWarning at tol = 0
    return model.fit(x)


FITS = {"gen_jax": gen_jax_fit, "scikit-learn": sklearn_fit}


@dataclasses.dataclass
class FitSide:
  name: str
  fit: Callable
  x: np.ndarray
  start: tuple

  def seconds(self, iterations: int) -> float:
    """Seconds of one fit of `iterations` EM iterations."""
    begin = time.perf_counter()
    self.fit(self.x, self.start, iterations)
    return time.perf_counter() - begin


def compare(title: str, num_points: int, dim: int, num_components: int, steps: int, rounds: int):
  """Interleaved rounds of the two fits (bench_peers' method), medians and ranges."""
  from experiments import bench_peers
  import sklearn
  x = mixture_data(num_points, dim, num_components)
  start = shared_start(x, num_components)
  sides = [FitSide("gen_jax fit_gmm", gen_jax_fit, x, start),
           FitSide(f"scikit-learn {sklearn.__version__} GaussianMixture", sklearn_fit, x, start)]
  for side in sides:   # compile for this iteration count; warm the caches
    side.fit(x, start, steps)
  num_params = gmm_lib.num_parameters("full", num_components, dim)
  timed = [bench_peers.Side(s.name, num_params, s.seconds) for s in sides]
  seconds = bench_peers.interleaved_rounds(timed, steps, rounds)
  return bench_peers.report(f"{title}: {num_points:,} points, D = {dim}, K = {num_components} full, float32, "
                            f"{steps} EM iterations a timing (steps/s = iterations/s), {rounds} rounds",
                            timed, seconds, [(timed[0].name, timed[1].name)])


def _status_kib(field: str) -> int:
  """A size field of /proc/self/status (VmRSS: resident now, VmHWM: peak resident), KiB."""
  with open("/proc/self/status") as f:
    fields = dict(line.split(":", 1) for line in f)
  return int(fields[field].split()[0])


def _peak_memory_child(side: str, num_points: int, dim: int, num_components: int, queue):
  x = mixture_data(num_points, dim, num_components)
  start = shared_start(x, num_components)
  baseline_kb = _status_kib("VmRSS")
  FITS[side](x, start, MEMORY_ITERATIONS)
  queue.put((baseline_kb, _status_kib("VmHWM")))


def peak_memory_mib(side: str, num_points: int, dim: int, num_components: int) -> tuple[float, float]:
  """(resident MiB once the data exist, peak MiB above that during the fit), in a fresh process."""
  context = multiprocessing.get_context("spawn")
  queue = context.Queue()
  process = context.Process(target=_peak_memory_child, args=(side, num_points, dim, num_components, queue))
  process.start()
  baseline_kb, peak_kb = queue.get()
  process.join()
  return baseline_kb / 1024, (peak_kb - baseline_kb) / 1024


def scaling(steps: int, rounds: int):
  rows = []
  print(f"\nEM seconds per iteration against n (2-D, K = 8 full, float32, {steps} iterations a timing, "
        f"median of {rounds})")
  for n in (10_000, 100_000, 1_000_000):
    x = mixture_data(n, 2, 8)
    start = shared_start(x, 8)
    times = {}
    for name, fit in FITS.items():
      side = FitSide(name, fit, x, start)
      fit(x, start, steps)
      times[name] = np.median([side.seconds(steps) for _ in range(rounds)]) / steps
    ratio = times["scikit-learn"] / times["gen_jax"]
    print(f"  n = {n:>9,d}: gen_jax {times['gen_jax'] * 1e3:8.2f} ms, scikit-learn "
          f"{times['scikit-learn'] * 1e3:8.2f} ms, ratio {ratio:.2f}x")
    rows.append((f"n = {n:,} (2-D, K = 8): gen_jax / scikit-learn", float(ratio), float(ratio), float(ratio)))
  print(f"\nPeak resident memory of one {MEMORY_ITERATIONS}-iteration fit, fresh process per side "
        "(MiB above the resident size with the data in memory)")
  for n, dim, k in ((1_000_000, 2, 8), (100_000, 64, 10)):
    for side in FITS:
      base, extra = peak_memory_mib(side, n, dim, k)
      print(f"  n = {n:,}, D = {dim}, K = {k}: {side:12s} +{extra:7.1f} MiB (resident before the fit {base:.0f} MiB; "
            f"data {n * dim * 4 / 2 ** 20:.1f} MiB)")
  return rows
