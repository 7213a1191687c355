"""AR(p) processes (seed 004): y_t = μ + Σ_{i=1}^p φ_i y_{t-i} + u_t, u_t ~ N(0, σ²).

Everything conditions on the first p values of the series (the conditional likelihood): the
maximum-likelihood fit is then ordinary least squares of y_t on (1, y_{t-1}, ..., y_{t-p}),
and σ² = RSS / (n - p), the mean of the n - p squared residuals (statsmodels' `AutoReg`).
`phi[i - 1]` multiplies y_{t-i}. Series are 1-D arrays, time last.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gen_jax.distributions import normal_log_prob

# Criteria for `select_order`: the penalty per free parameter given the number of residuals n.
INFORMATION_CRITERIA = {
    "aic": lambda n: 2.0,
    "bic": lambda n: math.log(n),
}


class ARFit(NamedTuple):
  mu: jax.Array       # ()
  phi: jax.Array      # (p,)
  sigma2: jax.Array   # ()


def check_order(length: int, order: int, need: int, what: str) -> None:
  """Raises a one-line ValueError unless `order` is an int ≥ 0 and the series has `need` values."""
  if isinstance(order, bool) or not isinstance(order, int) or order < 0:
    raise ValueError(f"{what}: the order must be an integer >= 0, got {order!r}")
  if length < need:
    raise ValueError(f"{what}: a series of {length} values is too short for an AR({order}) "
                     f"(it needs at least {need}); lower the order or give a longer series")


def lagged_design(y, order: int):
  """Rows (1, y_{t-1}, ..., y_{t-p}) and targets y_t for t = p, ..., n-1."""
  n = y.shape[-1]
  lags = [y[order - i:n - i] for i in range(1, order + 1)]
  design = jnp.stack([jnp.ones(n - order, y.dtype), *lags], axis=-1)
  return design, y[order:]


def fit_ar(y, order: int) -> ARFit:
  """Conditional maximum-likelihood AR(p): (μ, φ, σ²) by least squares, σ² = RSS / (n - p)."""
  y = jnp.asarray(y)
  if y.ndim != 1:
    raise ValueError(f"fit_ar takes one series of shape (n,), got shape {y.shape}")
  check_order(y.shape[0], order, 2 * order + 1, "fit_ar")
  design, target = lagged_design(y, order)
  coef = jnp.linalg.lstsq(design, target)[0]
  residuals = target - design @ coef
  return ARFit(coef[0], coef[1:], jnp.mean(jnp.square(residuals)))


def conditional_means(mu, phi, y):
  """E[y_t | y_{t-1}, ..., y_{t-p}] = μ + Σ_i φ_i y_{t-i} for t = p, ..., n-1."""
  order = phi.shape[-1]
  design, _ = lagged_design(y, order)
  return mu + design[:, 1:] @ phi


def ar_log_prob(mu, phi, sigma2, y):
  """log p(y_p, ..., y_{n-1} | y_0, ..., y_{p-1}) = Σ_{t≥p} log N(y_t; μ + Σ_i φ_i y_{t-i}, σ²)."""
  y, phi = jnp.asarray(y), jnp.asarray(phi)
  if y.ndim != 1 or phi.ndim != 1:
    raise ValueError(f"ar_log_prob takes phi of shape (p,) and y of shape (n,), got "
                     f"{phi.shape} and {y.shape}")
  check_order(y.shape[0], phi.shape[0], phi.shape[0] + 1, "ar_log_prob")
  means = conditional_means(mu, phi, y)
  return jnp.sum(normal_log_prob(y[phi.shape[0]:], means, jnp.log(sigma2)))


class Forecast(NamedTuple):
  mean: jax.Array   # (horizon,)
  std: jax.Array    # (horizon,) standard deviation of the h-step prediction error


def forecast(mu, phi, sigma2, y, horizon: int) -> Forecast:
  """h-step forecasts after y: the mean by the recursion ŷ_{n+h} = μ + Σ_i φ_i ŷ_{n+h-i} (ŷ = y
  for observed times), and the error variance σ² Σ_{j<h} ψ_j², with ψ_0 = 1 and
  ψ_j = Σ_{i=1}^{min(j,p)} φ_i ψ_{j-i} (the MA(∞) weights). A 1-α interval is mean ± z_{α/2}·std."""
  y, phi = jnp.asarray(y), jnp.asarray(phi)
  order = phi.shape[0]
  check_order(y.shape[0], order, order, "forecast")
  history = y[y.shape[0] - order:][::-1]       # y_{n-1}, ..., y_{n-p}

  def step(offset):
    def advance(recent, _):   # recent = (v_{j-1}, ..., v_{j-p}) -> v_j = offset + φ·recent
      value = offset + jnp.dot(phi, recent)
      return jnp.concatenate([value[None], recent])[:order], value
    return advance

  _, means = jax.lax.scan(step(mu), history, length=horizon)
  first = jnp.zeros(order, y.dtype).at[:1].set(1.0)     # (ψ_0, ψ_{-1}, ...) = (1, 0, ...)
  _, later_psi = jax.lax.scan(step(0.0), first, length=horizon - 1)
  psi = jnp.concatenate([jnp.ones(1, y.dtype), later_psi])
  return Forecast(means, jnp.sqrt(sigma2 * jnp.cumsum(jnp.square(psi))))


def information_criterion(fit: ARFit, y, criterion: str = "aic"):
  """-2 log L + penalty · k at the fit, with k = p + 2 free parameters (μ, φ, σ²)."""
  if criterion not in INFORMATION_CRITERIA:
    raise ValueError(f"unknown information criterion {criterion!r}; known: {sorted(INFORMATION_CRITERIA)}")
  order = fit.phi.shape[0]
  log_lik = ar_log_prob(fit.mu, fit.phi, fit.sigma2, y)
  return -2.0 * log_lik + INFORMATION_CRITERIA[criterion](y.shape[0] - order) * (order + 2)


def select_order(y, max_order: int, criterion: str = "aic"):
  """The order in 0..max_order that minimises the criterion, every order fitted to the same
  residual times t = max_order, ..., n-1 (as statsmodels' `ar_select_order`), and the criteria."""
  y = jnp.asarray(y)
  check_order(y.shape[0], max_order, 2 * max_order + 1, "select_order")
  values = []
  for order in range(max_order + 1):
    window = y[max_order - order:]
    values.append(information_criterion(fit_ar(window, order), window, criterion))
  values = jnp.stack(values)
  return int(jnp.argmin(values)), values
