"""Discrete-time Gaussian diffusion (Sohl-Dickstein et al. 2015; Ho et al. 2020): schedules,
the forward process, its posterior, the conversions between what a network can predict,
and the reverse steps of DDPM and DDIM.

Time index convention (API.md): integer t in {0, ..., T-1}; index t is the paper's step t+1,
so `alphas_cumprod[t]` is the paper's ᾱ_{t+1}; index -1 is clean data with ᾱ = 1.

  q(x_t | x_0)         = N(√ᾱ_t x_0, (1 - ᾱ_t) I)
  q(x_{t-1} | x_t, x_0) = N(c1_t x_0 + c2_t x_t, β̃_t I),
      c1_t = β_t √ᾱ_{t-1} / (1 - ᾱ_t),  c2_t = (1 - ᾱ_{t-1}) √α_t / (1 - ᾱ_t),
      β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)
  x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε,   v = √ᾱ_t ε - √(1 - ᾱ_t) x_0 (Salimans & Ho 2022).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

COSINE_OFFSET = 0.008


@flax.struct.dataclass
class Schedule:
  """Per-index coefficients of a discrete diffusion, all of shape (T,)."""
  betas: jax.Array
  alphas: jax.Array
  alphas_cumprod: jax.Array
  alphas_cumprod_prev: jax.Array
  sqrt_alphas_cumprod: jax.Array
  sqrt_one_minus_alphas_cumprod: jax.Array
  posterior_variance: jax.Array          # β̃_t (0 at t = 0)
  posterior_log_variance_clipped: jax.Array  # log β̃_t with β̃_0 replaced by β̃_1 (Ho et al.)
  posterior_mean_coef1: jax.Array        # multiplies x_0
  posterior_mean_coef2: jax.Array        # multiplies x_t

  @property
  def num_steps(self) -> int:
    return self.betas.shape[0]


def linear_betas(num_steps: int, beta_start: float = 1e-4, beta_end: float = 0.02):
  """β_t linear from beta_start to beta_end (Ho et al. 2020), scaled for T = 1000 as given."""
  return jnp.linspace(beta_start, beta_end, num_steps)


def cosine_betas(num_steps: int, s: float = COSINE_OFFSET, max_beta: float = 0.999):
  """β_t = 1 - ᾱ(t+1)/ᾱ(t) with ᾱ(t) = cos²(π/2 (t/T + s)/(1 + s)), clipped at max_beta
  (Nichol & Dhariwal 2021). Computed in float64 on the host and cast once to JAX's default
  float dtype: in float32 the ratio loses up to 0.2 % at the first and last indices."""
  steps = np.arange(num_steps + 1, dtype=np.float64) / num_steps
  f = np.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
  return jnp.asarray(np.minimum(1.0 - f[1:] / f[:-1], max_beta), dtype=jnp.result_type(float))


def make_schedule(betas) -> Schedule:
  """All per-index coefficients from β, in the betas' dtype."""
  betas = jnp.asarray(betas)
  try:
    concrete = np.asarray(betas)
  except jax.errors.TracerArrayConversionError:  # inside jit: no value to check
    concrete = None
  if betas.ndim != 1 or (concrete is not None and not np.all((concrete > 0) & (concrete < 1))):
    raise ValueError(f"betas must be a 1-D array with every value in (0, 1); got shape {betas.shape}")
  alphas = 1.0 - betas
  alphas_cumprod = jnp.cumprod(alphas)
  alphas_cumprod_prev = jnp.concatenate([jnp.ones(1, betas.dtype), alphas_cumprod[:-1]])
  posterior_variance = betas * (1.0 - alphas_cumprod_prev) / (1.0 - alphas_cumprod)
  clipped = jnp.concatenate([posterior_variance[1:2], posterior_variance[1:]])
  return Schedule(
      betas=betas, alphas=alphas, alphas_cumprod=alphas_cumprod,
      alphas_cumprod_prev=alphas_cumprod_prev,
      sqrt_alphas_cumprod=jnp.sqrt(alphas_cumprod),
      sqrt_one_minus_alphas_cumprod=jnp.sqrt(1.0 - alphas_cumprod),
      posterior_variance=posterior_variance,
      posterior_log_variance_clipped=jnp.log(clipped),
      posterior_mean_coef1=betas * jnp.sqrt(alphas_cumprod_prev) / (1.0 - alphas_cumprod),
      posterior_mean_coef2=(1.0 - alphas_cumprod_prev) * jnp.sqrt(alphas) / (1.0 - alphas_cumprod))


def at(coefficients, t, x):
  """coefficients[t] reshaped to broadcast against x (batch first)."""
  return coefficients[t].reshape(t.shape + (1,) * (x.ndim - t.ndim)).astype(x.dtype)


def _alpha_bar(schedule: Schedule, t, x):
  """ᾱ at index t, with index -1 meaning clean data (ᾱ = 1)."""
  clean = (t < 0).reshape(t.shape + (1,) * (x.ndim - t.ndim))
  return jnp.where(clean, 1.0, at(schedule.alphas_cumprod, jnp.maximum(t, 0), x)).astype(x.dtype)


def q_sample(schedule: Schedule, x0, t, noise):
  """x_t = √ᾱ_t x_0 + √(1 - ᾱ_t) ε."""
  return (at(schedule.sqrt_alphas_cumprod, t, x0) * x0
          + at(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * noise)


def q_posterior(schedule: Schedule, x0, x_t, t):
  """(mean, variance, log variance) of q(x_{t-1} | x_t, x_0); the log variance is clipped at
  t = 0 (where β̃ = 0) to log β̃ at index 1."""
  mean = at(schedule.posterior_mean_coef1, t, x_t) * x0 + at(schedule.posterior_mean_coef2, t, x_t) * x_t
  variance = jnp.broadcast_to(at(schedule.posterior_variance, t, x_t), x_t.shape)
  log_variance = jnp.broadcast_to(at(schedule.posterior_log_variance_clipped, t, x_t), x_t.shape)
  return mean, variance, log_variance


def predict_x0_from_eps(schedule: Schedule, x_t, t, eps):
  """x_0 = (x_t - √(1 - ᾱ_t) ε) / √ᾱ_t."""
  return (x_t - at(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * eps) / at(
      schedule.sqrt_alphas_cumprod, t, x_t)


def predict_eps_from_x0(schedule: Schedule, x_t, t, x0):
  """ε = (x_t - √ᾱ_t x_0) / √(1 - ᾱ_t)."""
  return (x_t - at(schedule.sqrt_alphas_cumprod, t, x_t) * x0) / at(
      schedule.sqrt_one_minus_alphas_cumprod, t, x_t)


def v_from_x0_eps(schedule: Schedule, x0, eps, t):
  """v = √ᾱ_t ε - √(1 - ᾱ_t) x_0."""
  return at(schedule.sqrt_alphas_cumprod, t, x0) * eps - at(schedule.sqrt_one_minus_alphas_cumprod, t, x0) * x0


def predict_x0_from_v(schedule: Schedule, x_t, t, v):
  """x_0 = √ᾱ_t x_t - √(1 - ᾱ_t) v."""
  return at(schedule.sqrt_alphas_cumprod, t, x_t) * x_t - at(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * v


def predict_x0_from_mean(schedule: Schedule, x_t, t, mean):
  """x_0 = (μ - c2_t x_t) / c1_t, inverting the posterior mean."""
  return (mean - at(schedule.posterior_mean_coef2, t, x_t) * x_t) / at(schedule.posterior_mean_coef1, t, x_t)


# What a network predicts -> x_0 (every other quantity follows from x_0 and x_t).
X0_FROM_TARGET = {
    "eps": predict_x0_from_eps,
    "x0": lambda schedule, x_t, t, x0: x0,
    "v": predict_x0_from_v,
    "mean": predict_x0_from_mean,
}


def target_value(schedule: Schedule, target: str, x0, x_t, t, noise):
  """The regression target of each parameterization for (x_0, ε) at index t."""
  if target not in X0_FROM_TARGET:
    raise ValueError(f"unknown diffusion target {target!r}; choose from {sorted(X0_FROM_TARGET)}")
  values = {"eps": lambda: noise, "x0": lambda: x0,
            "v": lambda: v_from_x0_eps(schedule, x0, noise, t),
            "mean": lambda: q_posterior(schedule, x0, x_t, t)[0]}
  return values[target]()


def model_x0(schedule: Schedule, target: str, x_t, t, output, clip_x0: float | None = None):
  """The x_0 estimate implied by a network output under `target`, optionally clipped."""
  if target not in X0_FROM_TARGET:
    raise ValueError(f"unknown diffusion target {target!r}; choose from {sorted(X0_FROM_TARGET)}")
  x0 = X0_FROM_TARGET[target](schedule, x_t, t, output)
  return x0 if clip_x0 is None else jnp.clip(x0, -clip_x0, clip_x0)


def reverse_log_variance(schedule: Schedule, t, x, variance="small"):
  """log σ_t² of p(x_{t-1} | x_t): "small" = β̃_t (clipped at t = 0), "large" = β_t (with
  β̃_1 at t = 0, as Ho et al.), or a (T,) array of log variances."""
  if isinstance(variance, str):
    if variance == "small":
      table = schedule.posterior_log_variance_clipped
    elif variance == "large":
      table = jnp.log(jnp.concatenate([schedule.posterior_variance[1:2], schedule.betas[1:]]))
    else:
      raise ValueError(f"unknown reverse variance {variance!r}; choose 'small', 'large' or a (T,) array")
  else:
    table = jnp.asarray(variance)
  return jnp.broadcast_to(at(table, t, x), x.shape)


def p_mean_variance(schedule: Schedule, target: str, x_t, t, output, variance="small",
                    clip_x0: float | None = None):
  """(mean, log variance, x_0 estimate) of p_θ(x_{t-1} | x_t) = q(x_{t-1} | x_t, x̂_0)."""
  x0 = model_x0(schedule, target, x_t, t, output, clip_x0)
  if target == "mean" and clip_x0 is None:
    mean = output
  else:
    mean = q_posterior(schedule, x0, x_t, t)[0]
  return mean, reverse_log_variance(schedule, t, x_t, variance), x0


def ddpm_step(schedule: Schedule, x_t, t, eps, noise, variance="small"):
  """x_{t-1} = μ_θ(x_t, t) + σ_t z with μ_θ = (x_t - β_t/√(1 - ᾱ_t) ε) / √α_t; no noise at t = 0."""
  mean = (x_t - at(schedule.betas, t, x_t) / at(schedule.sqrt_one_minus_alphas_cumprod, t, x_t) * eps
          ) / jnp.sqrt(at(schedule.alphas, t, x_t))
  log_variance = reverse_log_variance(schedule, t, x_t, variance)
  nonzero = (t > 0).reshape(t.shape + (1,) * (x_t.ndim - t.ndim)).astype(x_t.dtype)
  return mean + nonzero * jnp.exp(0.5 * log_variance) * noise


def ddim_step(schedule: Schedule, x_t, t, t_prev, eps, eta, noise):
  """x at index t_prev from x_t (Song, Meng & Ermon 2021, eq. 12):
  x_prev = √ᾱ_prev x̂_0 + √(1 - ᾱ_prev - σ²) ε + σ z,
  σ = η √((1 - ᾱ_prev)/(1 - ᾱ_t)) √(1 - ᾱ_t/ᾱ_prev); t_prev = -1 means ᾱ_prev = 1."""
  alpha_bar = _alpha_bar(schedule, t, x_t)
  alpha_bar_prev = _alpha_bar(schedule, t_prev, x_t)
  x0 = (x_t - jnp.sqrt(1.0 - alpha_bar) * eps) / jnp.sqrt(alpha_bar)
  sigma = eta * jnp.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev))
  direction = jnp.sqrt(jnp.maximum(1.0 - alpha_bar_prev - sigma ** 2, 0.0)) * eps
  return jnp.sqrt(alpha_bar_prev) * x0 + direction + sigma * noise
