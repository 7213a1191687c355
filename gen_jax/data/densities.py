"""Procedural 2-D densities: samplers (NumPy) and log-densities (JAX, nats).

Log-densities are exact where a closed form exists (8 gaussians, checkerboard,
rings via the Bessel function I0) and quadratures over the curve parameter,
accurate far below the noise scale, for the noisy curves (swiss roll, two moons).

Entropies for reference: 8 gaussians ≈ ln 8 + ln(2πe σ²) ≈ 2.84 nats; checkerboard
ln 32 ≈ 3.47 nats (uniform on 8 squares of area 4).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping, Optional

import jax.numpy as jnp
import numpy as np
from jax.nn import logsumexp
from jax.scipy.special import i0e

from gen_jax.distributions import LOG_2PI

# Swiss roll (the seeds' Figure 1): t ~ U[1.5π, 4.5π], x = (t cos t, t sin t) / SWISS_ROLL_SCALE.
SWISS_ROLL_T_RANGE = (1.5 * math.pi, 4.5 * math.pi)
SWISS_ROLL_SCALE = 5.0
SWISS_ROLL_NOISE = 0.1
# Two moons (as scikit-learn's make_moons, centred and scaled by 2).
MOONS_NOISE = 0.1
MOONS_SCALE = 2.0
MOONS_OFFSET = np.array([0.5, 0.25])
# Eight gaussians (as FFJORD): centres on a circle of radius 4/√2, σ = 0.5/√2.
EIGHT_GAUSSIANS_RADIUS = 4.0 / math.sqrt(2.0)
EIGHT_GAUSSIANS_STD = 0.5 / math.sqrt(2.0)
# Checkerboard: uniform on the 8 dark 2x2 squares of a 4x4 board on [-4, 4]².
CHECKERBOARD_HALF_WIDTH = 4.0
CHECKERBOARD_AREA = 32.0
# Rings: four concentric circles of equal mass.
RING_RADII = (0.75, 1.5, 2.25, 3.0)
RING_NOISE = 0.08
# PacGAN's (and VEEGAN's) mode-coverage mixtures: equal isotropic Gaussians.
RING_OF_GAUSSIANS_MODES, RING_OF_GAUSSIANS_STD = 8, 0.01    # on the unit circle
GRID_OF_GAUSSIANS_AXIS, GRID_OF_GAUSSIANS_STD = (-4.0, -2.0, 0.0, 2.0, 4.0), 0.05
# Points per curve in the quadratures (spacing ≪ noise scale).
QUADRATURE_POINTS = 4096


@dataclasses.dataclass(frozen=True)
class Density2D:
  name: str
  sample: Callable[[np.random.Generator, int], np.ndarray]
  log_prob: Optional[Callable[[jnp.ndarray], jnp.ndarray]]  # (n, 2) -> (n,)
  exact: bool  # closed form (True) or quadrature (False)


def _gaussian_curve_log_prob(x, curve, noise):
  """log (1/M) Σ_i N(x; curve_i, noise² I) for points x (n, 2) and curve (M, 2)."""
  sq = jnp.sum(jnp.square(x[:, None, :] - curve[None, :, :]), axis=-1)
  log_normal = -sq / (2 * noise**2) - LOG_2PI - 2 * math.log(noise)
  return logsumexp(log_normal, axis=1) - math.log(curve.shape[0])


def _swiss_roll_curve(t):
  return np.stack([t * np.cos(t), t * np.sin(t)], axis=-1) / SWISS_ROLL_SCALE


def sample_swiss_roll(rng, n):
  t = rng.uniform(*SWISS_ROLL_T_RANGE, size=n)
  return _swiss_roll_curve(t) + SWISS_ROLL_NOISE * rng.standard_normal((n, 2))


def log_prob_swiss_roll(x):
  t = np.linspace(*SWISS_ROLL_T_RANGE, QUADRATURE_POINTS)
  return _gaussian_curve_log_prob(x, jnp.asarray(_swiss_roll_curve(t), x.dtype), SWISS_ROLL_NOISE)


def _moons_curve(t, upper):
  outer = np.stack([np.cos(t), np.sin(t)], axis=-1)
  inner = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=-1)
  return (np.where(upper[..., None], outer, inner) - MOONS_OFFSET) * MOONS_SCALE


def sample_two_moons(rng, n):
  t = rng.uniform(0.0, math.pi, size=n)
  upper = rng.random(n) < 0.5
  return _moons_curve(t, upper) + MOONS_SCALE * MOONS_NOISE * rng.standard_normal((n, 2))


def log_prob_two_moons(x):
  t = np.linspace(0.0, math.pi, QUADRATURE_POINTS // 2)
  curve = np.concatenate([_moons_curve(t, np.ones_like(t, bool)),
                          _moons_curve(t, np.zeros_like(t, bool))])
  return _gaussian_curve_log_prob(x, jnp.asarray(curve, x.dtype), MOONS_SCALE * MOONS_NOISE)


def _eight_centres():
  angles = np.arange(8) * (2 * math.pi / 8)
  return EIGHT_GAUSSIANS_RADIUS * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


def sample_eight_gaussians(rng, n):
  centres = _eight_centres()[rng.integers(0, 8, size=n)]
  return centres + EIGHT_GAUSSIANS_STD * rng.standard_normal((n, 2))


def log_prob_eight_gaussians(x):
  return _gaussian_curve_log_prob(x, jnp.asarray(_eight_centres(), x.dtype), EIGHT_GAUSSIANS_STD)


def sample_checkerboard(rng, n):
  x1 = rng.uniform(-2.0, 2.0, size=n)
  x2 = rng.uniform(0.0, 1.0, size=n) - 2.0 * rng.integers(0, 2, size=n) + np.floor(x1) % 2
  return np.stack([x1, x2], axis=-1) * 2.0


def log_prob_checkerboard(x):
  inside = jnp.all(jnp.abs(x) <= CHECKERBOARD_HALF_WIDTH, axis=-1)
  cell = jnp.floor(x / 2.0)
  dark = (cell[:, 0] + cell[:, 1]) % 2 == 0
  return jnp.where(inside & dark, -math.log(CHECKERBOARD_AREA), -jnp.inf)


def sample_rings(rng, n):
  radius = np.asarray(RING_RADII)[rng.integers(0, len(RING_RADII), size=n)]
  angle = rng.uniform(0.0, 2 * math.pi, size=n)
  ring = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
  return ring + RING_NOISE * rng.standard_normal((n, 2))


def log_prob_rings(x):
  """Σ_k (1/K) ∫ N(x; r_k(cos θ, sin θ), σ² I) dθ/2π = (1/K) Σ_k e^{-(|x|²+r_k²)/2σ²} I0(r_k|x|/σ²)/(2πσ²)."""
  norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
  radii = jnp.asarray(RING_RADII, x.dtype)[None, :]
  arg = radii * norm / RING_NOISE**2
  log_terms = (-(jnp.square(norm) + jnp.square(radii)) / (2 * RING_NOISE**2)
               + jnp.log(i0e(arg)) + arg - LOG_2PI - 2 * math.log(RING_NOISE))
  return logsumexp(log_terms, axis=1) - math.log(len(RING_RADII))


@dataclasses.dataclass(frozen=True)
class GaussianModes:
  """An equal mixture of isotropic Gaussians N(centres[k], std² I): sample and log_prob, and the
  modes themselves for mode-coverage metrics."""
  centres: np.ndarray  # (K, 2)
  std: float

  def sample(self, rng, n):
    return self.centres[rng.integers(0, len(self.centres), size=n)] + self.std * rng.standard_normal((n, 2))

  def log_prob(self, x):
    return _gaussian_curve_log_prob(x, jnp.asarray(self.centres, x.dtype), self.std)


def _ring_centres(num_modes: int):
  angles = np.arange(num_modes) * (2 * math.pi / num_modes)
  return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


MODE_MIXTURES: Mapping[str, GaussianModes] = {
    "ring_of_gaussians": GaussianModes(_ring_centres(RING_OF_GAUSSIANS_MODES), RING_OF_GAUSSIANS_STD),
    "grid_of_gaussians": GaussianModes(
        np.array([(a, b) for a in GRID_OF_GAUSSIANS_AXIS for b in GRID_OF_GAUSSIANS_AXIS]),
        GRID_OF_GAUSSIANS_STD),
}


DENSITIES: Mapping[str, Density2D] = {
    "swiss_roll": Density2D("swiss_roll", sample_swiss_roll, log_prob_swiss_roll, exact=False),
    "two_moons": Density2D("two_moons", sample_two_moons, log_prob_two_moons, exact=False),
    "eight_gaussians": Density2D("eight_gaussians", sample_eight_gaussians,
                                 log_prob_eight_gaussians, exact=True),
    "checkerboard": Density2D("checkerboard", sample_checkerboard, log_prob_checkerboard, exact=True),
    "rings": Density2D("rings", sample_rings, log_prob_rings, exact=True),
    **{name: Density2D(name, modes.sample, modes.log_prob, exact=True)
       for name, modes in MODE_MIXTURES.items()},
}
