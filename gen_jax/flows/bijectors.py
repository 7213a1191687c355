"""Bijectors as pure functions: y = f(x) with log|det ∂f/∂x| per example.

distrax's convention: `forward_and_log_det(params, x) -> (y, log_det)` is the generative
direction (base noise z -> data), `inverse_and_log_det(params, y) -> (x, log_det)` the density
direction, and the inverse's log-det is minus the forward's at the matching point. A flow's
density is the seeds' eq. 2.9-2.18,

    log p(x) = log p(z) + log|det ∂f⁻¹/∂x|,   z = f⁻¹(x).

`event_ndims` is the number of trailing axes that make one example (1: vectors, 3: images
(H, W, C)); the log-det sums over them and keeps every leading (batch) axis. Every bijector
works under jit and vmap, in float32 and float64.

Parameters are pytrees passed in; networks that produce them (coupling conditioners, MADE)
live in `gen_jax.nets.flows`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

Params = Any
Array = jax.Array
# (params, x) -> (y, log_det): log_det has x's shape without its event axes.
BijectorFn = Callable[[Params, Array], tuple[Array, Array]]


@dataclasses.dataclass(frozen=True)
class Bijector:
  """An invertible map with both directions and their log-determinants."""
  forward_and_log_det: BijectorFn
  inverse_and_log_det: BijectorFn
  event_ndims: int = 1

  def forward(self, params, x):
    return self.forward_and_log_det(params, x)[0]

  def inverse(self, params, y):
    return self.inverse_and_log_det(params, y)[0]


def sum_event(values, event_ndims: int):
  """Sums elementwise log-dets over the last `event_ndims` axes."""
  return jnp.sum(values, axis=tuple(range(values.ndim - event_ndims, values.ndim)))


def invert(bijector: Bijector) -> Bijector:
  """f⁻¹ as a bijector: forward and inverse swapped."""
  return Bijector(bijector.inverse_and_log_det, bijector.forward_and_log_det, bijector.event_ndims)


def chain(bijectors: Sequence[Bijector]) -> Bijector:
  """f = f_K ∘ ... ∘ f_1 for bijectors (f_1, ..., f_K), in the order the forward pass applies
  them; params is a sequence with one entry per bijector. log det = Σ_k log det_k."""
  bijectors = tuple(bijectors)
  event_ndims = max(b.event_ndims for b in bijectors)

  def forward(params, x):
    total = 0.0
    for b, p in zip(bijectors, params):
      x, log_det = b.forward_and_log_det(p, x)
      total = total + log_det
    return x, total

  def inverse(params, y):
    total = 0.0
    for b, p in reversed(tuple(zip(bijectors, params))):
      y, log_det = b.inverse_and_log_det(p, y)
      total = total + log_det
    return y, total

  return Bijector(forward, inverse, event_ndims)


def permutation(perm: Sequence[int]) -> Bijector:
  """y_i = x_perm[i] along the last axis (params: None); log det = 0."""
  perm = np.asarray(perm)
  inv = np.argsort(perm)

  def forward(params, x):
    return x[..., perm], jnp.zeros(x.shape[:-1], x.dtype)

  def inverse(params, y):
    return y[..., inv], jnp.zeros(y.shape[:-1], y.dtype)

  return Bijector(forward, inverse, 1)


# ---------------------------------------------------------------------------------------
# Elementwise transforms y = τ(x; θ), θ given per element (by a conditioner).


@dataclasses.dataclass(frozen=True)
class ElementwiseTransform:
  """τ(x; θ) with θ = (..., num_params) per element; `forward`/`inverse` return (y, log|τ'|)
  elementwise."""
  name: str
  num_params: int
  forward: Callable[[Array, Array], tuple[Array, Array]]
  inverse: Callable[[Array, Array], tuple[Array, Array]]


def affine_forward(x, theta):
  """y = x·exp(s) + t for θ = (t, s); log|dy/dx| = s."""
  shift, log_scale = theta[..., 0], theta[..., 1]
  return x * jnp.exp(log_scale) + shift, log_scale


def affine_inverse(y, theta):
  shift, log_scale = theta[..., 0], theta[..., 1]
  return (y - shift) * jnp.exp(-log_scale), -log_scale


def additive_forward(x, theta):
  """NICE: y = x + t for θ = (t,); log|dy/dx| = 0."""
  return x + theta[..., 0], jnp.zeros_like(x)


def additive_inverse(y, theta):
  return y - theta[..., 0], jnp.zeros_like(y)


AFFINE = ElementwiseTransform("affine", 2, affine_forward, affine_inverse)
ADDITIVE = ElementwiseTransform("additive", 1, additive_forward, additive_inverse)


# Rational-quadratic splines (Durkan et al. 2019), K bins on [-B, B], identity outside.
SPLINE_MIN_BIN_WIDTH = 1e-3
SPLINE_MIN_BIN_HEIGHT = 1e-3
SPLINE_MIN_DERIVATIVE = 1e-3


def spline_num_params(num_bins: int) -> int:
  """K widths, K heights and K - 1 interior knot derivatives (the two ends have slope 1)."""
  return 3 * num_bins - 1


def _spline_knots(theta, num_bins: int, bound: float):
  """Knot positions x_k, y_k (K + 1 each) and slopes δ_k (K + 1) from unconstrained θ."""
  dtype = theta.dtype
  widths = jax.nn.softmax(theta[..., :num_bins], axis=-1)
  widths = SPLINE_MIN_BIN_WIDTH + (1 - SPLINE_MIN_BIN_WIDTH * num_bins) * widths
  heights = jax.nn.softmax(theta[..., num_bins:2 * num_bins], axis=-1)
  heights = SPLINE_MIN_BIN_HEIGHT + (1 - SPLINE_MIN_BIN_HEIGHT * num_bins) * heights
  # Interior slopes: softplus shifted so that θ = 0 gives slope 1.
  interior = SPLINE_MIN_DERIVATIVE + jax.nn.softplus(
      theta[..., 2 * num_bins:] + jnp.log(jnp.expm1(jnp.asarray(1 - SPLINE_MIN_DERIVATIVE, dtype))))
  ones = jnp.ones(theta.shape[:-1] + (1,), dtype)
  slopes = jnp.concatenate([ones, interior, ones], axis=-1)
  zeros = jnp.zeros(theta.shape[:-1] + (1,), dtype)

  def knots(sizes):
    k = jnp.concatenate([zeros, jnp.cumsum(sizes, axis=-1)], axis=-1)
    k = 2 * bound * k - bound
    return k.at[..., 0].set(-bound).at[..., -1].set(bound)

  return knots(widths), knots(heights), slopes


def _gather_bin(values, index):
  return jnp.take_along_axis(values, index[..., None], axis=-1)[..., 0]


def rational_quadratic_spline(x, theta, num_bins: int, bound: float, inverse: bool = False):
  """The monotone rational-quadratic spline τ(x; θ) (Durkan et al. 2019, eqs. 4-6 and the
  quadratic of their appendix for the inverse) on [-B, B], the identity outside; returns
  (y, log|dy/dx|) forward and (x, log|dx/dy|) inverse, elementwise."""
  xk, yk, slopes = _spline_knots(theta, num_bins, bound)
  inside = (x > -bound) & (x < bound)
  knots_in = yk if inverse else xk
  index = jnp.clip(jnp.sum(x[..., None] >= knots_in[..., 1:-1], axis=-1), 0, num_bins - 1)
  x0, x1 = _gather_bin(xk, index), _gather_bin(xk, index + 1)
  y0, y1 = _gather_bin(yk, index), _gather_bin(yk, index + 1)
  d0, d1 = _gather_bin(slopes, index), _gather_bin(slopes, index + 1)
  w, h = x1 - x0, y1 - y0
  s = h / w
  c2 = d0 + d1 - 2 * s
  xc = jnp.clip(x, -bound, bound)  # outside values never reach a division below
  if inverse:
    # Solve h[s ξ² + d0 ξ(1-ξ)] = (y - y0)[s + c2 ξ(1-ξ)] for ξ ∈ [0, 1].
    dy = xc - y0
    a = h * (s - d0) + dy * c2
    b = h * d0 - dy * c2
    c = -s * dy
    disc = jnp.maximum(b * b - 4 * a * c, 0.0)
    xi = (2 * c) / (-b - jnp.sqrt(disc))
    xi = jnp.clip(xi, 0.0, 1.0)
  else:
    xi = (xc - x0) / w
  denom = s + c2 * xi * (1 - xi)
  out = x0 + xi * w if inverse else y0 + h * (s * xi * xi + d0 * xi * (1 - xi)) / denom
  log_deriv = (2 * jnp.log(s) + jnp.log(d1 * xi * xi + 2 * s * xi * (1 - xi) + d0 * (1 - xi) ** 2)
               - 2 * jnp.log(denom))
  if inverse:
    log_deriv = -log_deriv
  return jnp.where(inside, out, x), jnp.where(inside, log_deriv, 0.0)


def spline(num_bins: int, bound: float) -> ElementwiseTransform:
  return ElementwiseTransform(
      f"spline{num_bins}", spline_num_params(num_bins),
      lambda x, theta: rational_quadratic_spline(x, theta, num_bins, bound),
      lambda y, theta: rational_quadratic_spline(y, theta, num_bins, bound, inverse=True))


# ---------------------------------------------------------------------------------------
# Coupling and autoregressive layers. A conditioner is (params, x) -> θ of shape
# x.shape + (num_params,); a coupling conditioner sees only the masked-in entries.


def coupling(mask, conditioner, transform: ElementwiseTransform, event_ndims: int = 1) -> Bijector:
  """y = m ⊙ x + (1 - m) ⊙ τ(x; θ(m ⊙ x)) (NICE: additive τ; RealNVP: affine; neural spline
  flows: the RQ spline), with mask m (the event's shape; 1 = passed through). log det =
  Σ_{m=0} log|τ'|. Checkerboard and channel masks: `checkerboard_mask`, `channel_mask`."""
  mask = jnp.asarray(mask)

  def apply(direction):
    def fn(params, x):
      m = mask.astype(x.dtype)
      theta = conditioner(params, x * m)
      y, log_deriv = direction(x, theta)
      return m * x + (1 - m) * y, sum_event((1 - m) * log_deriv, event_ndims)
    return fn

  return Bijector(apply(transform.forward), apply(transform.inverse), event_ndims)


def checkerboard_mask(shape: Sequence[int], parity: int = 0) -> np.ndarray:
  """1 where (i + j) % 2 == parity over the first two axes of `shape` (H, W[, C]); for a
  vector event, alternate entries."""
  shape = tuple(shape)
  if len(shape) == 1:
    return (np.arange(shape[0]) % 2 == parity).astype(np.float32)
  i, j = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
  mask = ((i + j) % 2 == parity).astype(np.float32)
  return np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - 2)), shape).copy()


def channel_mask(shape: Sequence[int], parity: int = 0) -> np.ndarray:
  """1 on the first half of the last axis (parity 0) or the second half (parity 1)."""
  shape = tuple(shape)
  first = np.arange(shape[-1]) < shape[-1] // 2
  mask = (first if parity == 0 else ~first).astype(np.float32)
  return np.broadcast_to(mask, shape).copy()


def masked_autoregressive(conditioner, transform: ElementwiseTransform, dim: int) -> Bijector:
  """MAF (Papamakarios et al. 2017): y_i = τ(x_i; θ_i(y_<i)) with θ from a MADE over y. The
  inverse (density direction) is one pass, x = τ⁻¹(y; θ(y)): MAF's fast direction; the forward
  (sampling) takes `dim` passes, each fixing one more coordinate."""

  def inverse(params, y):
    x, log_deriv = transform.inverse(y, conditioner(params, y))
    return x, jnp.sum(log_deriv, axis=-1)

  def forward(params, x):
    # Pass k fixes y_k; a Python loop, so a conditioner may be a bound Flax module. The last
    # pass's θ already sees every y_<i (only y's last coordinate is still open, and no θ_i
    # depends on it), so its log-derivatives are the final ones.
    y = jnp.zeros_like(x)
    for _ in range(dim):
      y, log_deriv = transform.forward(x, conditioner(params, y))
    return y, jnp.sum(log_deriv, axis=-1)

  return Bijector(forward, inverse, 1)


def inverse_autoregressive(conditioner, transform: ElementwiseTransform, dim: int) -> Bijector:
  """IAF (Kingma et al. 2016): y_i = τ(x_i; θ_i(x_<i)) with θ from a MADE over x. The forward
  (sampling) direction is one pass: IAF's fast direction; the inverse (density) takes `dim`
  passes."""
  swapped = dataclasses.replace(transform, forward=transform.inverse, inverse=transform.forward)
  return invert(masked_autoregressive(conditioner, swapped, dim))


# ---------------------------------------------------------------------------------------
# Planar and radial flows (Rezende & Mohamed 2015).

# Bisection steps for the planar flow's inverse: the bracket has width 2|w·û|, halved each
# step, so 64 steps reach float64 resolution for any |w·û| < 2^10.
PLANAR_BISECTION_STEPS = 64


def planar_constrained_u(u, w):
  """û = u + (m(w·u) - w·u) w/|w|², m(a) = -1 + softplus(a): w·û ≥ -1, so f is invertible."""
  wu = jnp.sum(w * u, axis=-1, keepdims=True)
  return u + (jax.nn.softplus(wu) - 1.0 - wu) * w / jnp.sum(w * w, axis=-1, keepdims=True)


def planar_forward(params, x):
  """y = x + û tanh(w·x + b); log|det| = log|1 + û·w (1 - tanh²(w·x + b))|."""
  u = planar_constrained_u(params["u"], params["w"])
  w, b = params["w"], params["b"]
  a = x @ w + b
  h = jnp.tanh(a)
  y = x + h[..., None] * u
  return y, jnp.log(jnp.abs(1.0 + (1.0 - h * h) * jnp.dot(u, w)))


def planar_inverse(params, y):
  """x = y - û tanh(α + b), α = w·x the root of α + (w·û) tanh(α + b) = w·y (increasing in α
  since w·û ≥ -1), found by bisection, then one Newton step outside the stop-gradient so that
  gradients are the implicit function theorem's."""
  u = planar_constrained_u(params["u"], params["w"])
  w, b = params["w"], params["b"]
  c = jnp.dot(u, w)
  target = y @ w

  def g(alpha):
    return alpha + c * jnp.tanh(alpha + b) - target

  half = jnp.abs(c) + 1.0
  lo, hi = jax.lax.stop_gradient(target - half), jax.lax.stop_gradient(target + half)

  def bisect(_, bracket):
    lo, hi = bracket
    mid = 0.5 * (lo + hi)
    below = jax.lax.stop_gradient(g(mid)) < 0
    return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

  lo, hi = jax.lax.fori_loop(0, PLANAR_BISECTION_STEPS, bisect, (lo, hi))
  alpha0 = jax.lax.stop_gradient(0.5 * (lo + hi))
  slope = 1.0 + c * (1.0 - jnp.tanh(alpha0 + b) ** 2)
  alpha = alpha0 - g(alpha0) / slope
  x = y - jnp.tanh(alpha + b)[..., None] * u
  _, log_det = planar_forward(params, x)
  return x, -log_det


PLANAR = Bijector(planar_forward, planar_inverse, 1)


def radial_coefficients(params):
  """α = softplus(a) > 0, β = -α + softplus(b) ≥ -α (the invertibility constraint)."""
  alpha = jax.nn.softplus(params["log_alpha"])
  beta = -alpha + jax.nn.softplus(params["beta"])
  return alpha, beta


def radial_forward(params, x):
  """y = x + β h(r)(x - z₀), h = 1/(α + r), r = |x - z₀|;
  log|det| = (d - 1) log(1 + βh) + log(1 + βh + βh'(r) r)."""
  alpha, beta = radial_coefficients(params)
  diff = x - params["center"]
  r = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
  h = 1.0 / (alpha + r)
  y = x + (beta * h)[..., None] * diff
  d = x.shape[-1]
  log_det = (d - 1) * jnp.log1p(beta * h) + jnp.log1p(beta * h - beta * h * h * r)
  return y, log_det


def radial_inverse(params, y):
  """|y - z₀| = r (1 + β/(α + r)) solved for r: r² + (α + β - r_y) r - α r_y = 0 (its
  non-negative root), then x - z₀ = (y - z₀)/(1 + β/(α + r))."""
  alpha, beta = radial_coefficients(params)
  diff = y - params["center"]
  ry = jnp.sqrt(jnp.sum(diff * diff, axis=-1))
  p = alpha + beta - ry
  r = 0.5 * (-p + jnp.sqrt(p * p + 4 * alpha * ry))
  x = params["center"] + diff / (1.0 + beta / (alpha + r))[..., None]
  _, log_det = radial_forward(params, x)
  return x, -log_det


RADIAL = Bijector(radial_forward, radial_inverse, 1)


# ---------------------------------------------------------------------------------------
# Glow's layers on images (..., H, W, C): actnorm, invertible 1x1 convolution, squeeze.

# Actnorm's data-dependent init leaves a channel whose batch std is below this unscaled
# (scale 1): dividing by a near-zero std would make the scale, and log-det, explode.
ACTNORM_MIN_STD = 1e-6


def actnorm_init(x):
  """Data-dependent init (Glow): bias = batch mean and log_scale = log std per channel (the
  last axis), so that the inverse x ↦ (x - bias)·exp(-log_scale) gives zero mean and unit
  variance per channel on this batch; a constant channel keeps log_scale = 0."""
  axes = tuple(range(x.ndim - 1))
  mean = jnp.mean(x, axis=axes)
  std = jnp.std(x, axis=axes)
  log_scale = jnp.where(std > ACTNORM_MIN_STD, jnp.log(jnp.maximum(std, ACTNORM_MIN_STD)), 0.0)
  return {"bias": mean, "log_scale": log_scale}


def _spatial_size(x, event_ndims):
  return int(np.prod(x.shape[x.ndim - event_ndims:-1]))


def _per_example(log_det, x, event_ndims):
  """A log-det shared by every example, broadcast over x's batch axes in x's dtype."""
  return jnp.broadcast_to(log_det, x.shape[:x.ndim - event_ndims]).astype(x.dtype)


def actnorm(event_ndims: int = 3) -> Bijector:
  """y = x·exp(s) + b per channel; log det = (H·W)·Σ_c s_c per example."""

  def forward(params, x):
    log_det = _spatial_size(x, event_ndims) * jnp.sum(params["log_scale"])
    y = x * jnp.exp(params["log_scale"]) + params["bias"]
    return y, _per_example(log_det, x, event_ndims)

  def inverse(params, y):
    log_det = -_spatial_size(y, event_ndims) * jnp.sum(params["log_scale"])
    x = (y - params["bias"]) * jnp.exp(-params["log_scale"])
    return x, _per_example(log_det, y, event_ndims)

  return Bijector(forward, inverse, event_ndims)


def conv1x1_weight(params):
  """The 1x1 convolution's C x C matrix: `weight` as given (plain), or P·L·(U + diag(sign·e^s))
  from the LU parameters (`lower`, `upper`, `log_scale`, with the constants `permutation`
  and `sign` given as numpy arrays)."""
  if "weight" in params:
    return params["weight"]
  c = params["lower"].shape[-1]
  eye = jnp.eye(c, dtype=params["lower"].dtype)
  lower = jnp.tril(params["lower"], -1) + eye
  upper = jnp.triu(params["upper"], 1) + jnp.diag(params["sign"] * jnp.exp(params["log_scale"]))
  return jnp.asarray(params["permutation"], lower.dtype) @ lower @ upper


def conv1x1_log_abs_det(params):
  """log|det W|: Σ s_c for the LU form, slogdet otherwise."""
  if "weight" in params:
    return jnp.linalg.slogdet(params["weight"])[1]
  return jnp.sum(params["log_scale"])


def conv1x1(event_ndims: int = 3) -> Bijector:
  """Glow's invertible 1x1 convolution y_{hw} = W x_{hw} at every position; log det = H·W·log|det W|."""

  def forward(params, x):
    w = conv1x1_weight(params)
    log_det = _spatial_size(x, event_ndims) * conv1x1_log_abs_det(params)
    return x @ w.T, _per_example(log_det, x, event_ndims)

  def inverse(params, y):
    w = conv1x1_weight(params)
    log_det = -_spatial_size(y, event_ndims) * conv1x1_log_abs_det(params)
    return y @ jnp.linalg.inv(w).T, _per_example(log_det, y, event_ndims)

  return Bijector(forward, inverse, event_ndims)


def conv1x1_lu_init(rng: np.random.Generator, channels: int):
  """A random rotation W₀ = P·L·U (scipy's LU): trainable `lower`, `upper`, `log_scale`, and
  the constants `permutation` (P) and `sign` (of U's diagonal)."""
  import scipy.linalg
  w0 = np.linalg.qr(rng.standard_normal((channels, channels)))[0]
  p, lower, upper = scipy.linalg.lu(w0)
  diag = np.diag(upper)
  return ({"lower": np.tril(lower, -1).astype(np.float32), "upper": np.triu(upper, 1).astype(np.float32),
           "log_scale": np.log(np.abs(diag)).astype(np.float32)},
          {"permutation": p.astype(np.float32), "sign": np.sign(diag).astype(np.float32)})


def squeeze(x):
  """(..., H, W, C) -> (..., H/2, W/2, 4C): each 2x2 patch into channels (a permutation: log det 0)."""
  *lead, h, w, c = x.shape
  x = x.reshape(*lead, h // 2, 2, w // 2, 2, c)
  x = jnp.swapaxes(x, -4, -3)  # (..., H/2, W/2, 2 rows, 2 columns, C)
  return x.reshape(*lead, h // 2, w // 2, 4 * c)


def unsqueeze(x):
  """The inverse of `squeeze`."""
  *lead, h, w, c = x.shape
  x = x.reshape(*lead, h, w, 2, 2, c // 4)
  x = jnp.swapaxes(x, -4, -3)  # (..., H, 2 rows, W, 2 columns, C/4)
  return x.reshape(*lead, 2 * h, 2 * w, c // 4)


def squeeze_bijector() -> Bijector:
  def forward(params, x):
    return squeeze(x), jnp.zeros(x.shape[:-3], x.dtype)

  def inverse(params, y):
    return unsqueeze(y), jnp.zeros(y.shape[:-3], y.dtype)

  return Bijector(forward, inverse, 3)
