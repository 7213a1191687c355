"""Score-based generative modelling through SDEs (Song et al. 2021), t ∈ [0, 1].

  forward:  dx = f(x, t) dt + g(t) dw
  reverse:  dx = [f - g² ∇log p_t(x)] dt + g dw̄
  probability-flow ODE: dx/dt = f - ½ g² ∇log p_t(x)
VP: f = -½ β(t) x, g = √β(t), β(t) = β_min + t (β_max - β_min);
    x_t | x_0 ~ N(m(t) x_0, (1 - m(t)²) I), m(t) = exp(-¼ t² (β_max - β_min) - ½ t β_min).
VE: f = 0, g = σ(t) √(2 log(σ_max/σ_min)), σ(t) = σ_min (σ_max/σ_min)^t;
    x_t | x_0 ~ N(x_0, σ(t)² I) (σ_min² neglected, as Song et al.).

`score_fn(x, t)` takes t of shape (batch,). Samplers are compiled loops with per-example
keys; the ODE log-likelihood integrates log p_0(x) = log p_1(x_1) + ∫_0^1 ∇·ẋ dt with fixed
RK4 steps, with the exact divergence (jacfwd; low dimensions) or Hutchinson's estimator.
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp

from gen_jax import distributions
from gen_jax.diffusion.samplers import PRIOR_DRAW  # the fold-in index of the x_T draw
from gen_jax.keys import as_typed_key, example_keys



def _bcast(values, x):
  return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


@flax.struct.dataclass
class VPSDE:
  beta_min: float = flax.struct.field(pytree_node=False, default=0.1)
  beta_max: float = flax.struct.field(pytree_node=False, default=20.0)
  t_min: float = flax.struct.field(pytree_node=False, default=1e-3)

  def beta(self, t):
    return self.beta_min + t * (self.beta_max - self.beta_min)

  def drift_diffusion(self, x, t):
    beta = _bcast(self.beta(t), x)
    return -0.5 * beta * x, jnp.sqrt(self.beta(t))

  def marginal(self, t):
    """(m(t), s(t)): x_t = m x_0 + s ε."""
    log_mean = -0.25 * t ** 2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min
    return jnp.exp(log_mean), jnp.sqrt(-jnp.expm1(2.0 * log_mean))

  def prior_std(self):
    return 1.0


@flax.struct.dataclass
class VESDE:
  sigma_min: float = flax.struct.field(pytree_node=False, default=0.01)
  sigma_max: float = flax.struct.field(pytree_node=False, default=50.0)
  t_min: float = flax.struct.field(pytree_node=False, default=1e-5)

  def sigma(self, t):
    return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

  def drift_diffusion(self, x, t):
    return jnp.zeros_like(x), self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

  def marginal(self, t):
    return jnp.ones_like(t), self.sigma(t)

  def prior_std(self):
    return self.sigma_max


SDES = {"vp": VPSDE, "ve": VESDE}


def eps_matching_loss(sde, eps_fn, x, keys):
  """The score SDE's training loss with an ε-network, per example:

      E_{t ~ U(t_min, 1), ε} |ε − ε_θ(m(t) x + s(t) ε, t)|²   (mean over dimensions),

  denoising score matching with λ(t) = s(t)² for score(x, t) = −ε_θ(x, t) / s(t). Example i
  draws t from fold_in(keys[i], 0) and ε from fold_in(keys[i], 1). Returns (loss (batch,),
  {"mse": loss})."""
  keys = example_keys(keys, x.shape[0])
  t = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 0), (), x.dtype, sde.t_min, 1.0))(keys)
  noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), x.shape[1:], x.dtype))(keys)
  mean, std = sde.marginal(t)
  x_t = _bcast(mean, x) * x + _bcast(std, x) * noise
  mse = jnp.mean(jnp.square(noise - eps_fn(x_t, t)).reshape(x.shape[0], -1), axis=-1)
  return mse, {"mse": mse}


def prior_sample(sde, keys, shape, dtype=jnp.float32):
  return sde.prior_std() * jax.vmap(
      lambda k: jax.random.normal(jax.random.fold_in(k, PRIOR_DRAW), shape[1:], dtype))(keys)


def prior_log_prob(sde, x):
  """log N(x; 0, prior_std² I) per example."""
  log_var = 2.0 * math.log(sde.prior_std())
  return jnp.sum(distributions.normal_log_prob(x, 0.0, log_var).reshape(x.shape[0], -1), -1)


def pc_sample(sde, score_fn, key, shape, num_steps: int = 1000, corrector_steps: int = 1,
              snr: float = 0.16, dtype=jnp.float32):
  """Predictor–corrector sampling: per step, `corrector_steps` Langevin moves
  x += ε s + √(2ε) z, then one Euler–Maruyama step of the reverse SDE from t to t - Δt; the
  last step adds no noise. Song et al. (2021, alg. 4-5) set ε = 2 (snr |z| / |s|)² with norms
  averaged over the batch; here |z| and |s| are replaced by their values for Gaussian
  noise, √D and √D / std(t), so ε = 2 (snr std(t))²: the same step in high dimensions, and
  one that depends on neither the batch nor the example (per-example ratios blow up where
  the score vanishes, between modes in low dimensions)."""
  keys = example_keys(as_typed_key(key), shape[0])
  x = prior_sample(sde, keys, shape, dtype)
  times = jnp.linspace(1.0, sde.t_min, num_steps, dtype=dtype)
  dt = (1.0 - sde.t_min) / (num_steps - 1) if num_steps > 1 else 1.0 - sde.t_min

  def noise(step, sub):
    return jax.vmap(lambda k: jax.random.normal(
        jax.random.fold_in(jax.random.fold_in(k, step), sub), shape[1:], dtype))(keys)

  def body(i, x):
    t = jnp.full(shape[:1], times[i])
    step_size = _bcast(2.0 * (snr * sde.marginal(t)[1]) ** 2, x)
    for j in range(corrector_steps):
      x = x + step_size * score_fn(x, t) + jnp.sqrt(2.0 * step_size) * noise(i, 1 + j)
    drift, diffusion = sde.drift_diffusion(x, t)
    g = _bcast(diffusion, x)
    mean = x - (drift - g ** 2 * score_fn(x, t)) * dt
    last = (i == num_steps - 1).astype(dtype)
    return mean + (1.0 - last) * g * jnp.sqrt(dt) * noise(i, 0)

  return jax.lax.fori_loop(0, num_steps, body, x)


def annealed_langevin_sample(score_fn, key, shape, sigmas, steps_per_level: int = 100,
                             step_scale: float = 2e-5, dtype=jnp.float32):
  """NCSN (Song & Ermon 2019, alg. 1): for σ_1 > ... > σ_L, `steps_per_level` moves
  x += (α/2) s(x, σ_i) + √α z with α = step_scale σ_i² / σ_L². `score_fn(x, sigma)` takes
  σ of shape (batch,). Starts from N(0, σ_1² I)."""
  sigmas = jnp.asarray(sigmas, dtype)
  keys = example_keys(as_typed_key(key), shape[0])
  x = sigmas[0] * jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, PRIOR_DRAW), shape[1:], dtype))(keys)

  def body(n, x):
    level = n // steps_per_level
    sigma = sigmas[level]
    alpha = step_scale * (sigma / sigmas[-1]) ** 2
    z = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, n), shape[1:], dtype))(keys)
    return x + 0.5 * alpha * score_fn(x, jnp.full(shape[:1], sigma)) + jnp.sqrt(alpha) * z

  return jax.lax.fori_loop(0, sigmas.shape[0] * steps_per_level, body, x)


def ode_drift(sde, score_fn, x, t):
  """Probability-flow velocity f(x, t) - ½ g(t)² s(x, t)."""
  drift, diffusion = sde.drift_diffusion(x, t)
  return drift - 0.5 * _bcast(diffusion, x) ** 2 * score_fn(x, t)


def _rk4(f, y, t0, t1, num_steps: int):
  """Fixed-step classical Runge–Kutta from t0 to t1 for dy/dt = f(y, t) (t a scalar)."""
  h = (t1 - t0) / num_steps

  def body(i, y):
    t = t0 + i * h
    k1 = f(y, t)
    k2 = f(jax.tree.map(lambda a, b: a + 0.5 * h * b, y, k1), t + 0.5 * h)
    k3 = f(jax.tree.map(lambda a, b: a + 0.5 * h * b, y, k2), t + 0.5 * h)
    k4 = f(jax.tree.map(lambda a, b: a + h * b, y, k3), t + h)
    return jax.tree.map(lambda a, b1, b2, b3, b4: a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4), y, k1, k2, k3, k4)

  return jax.lax.fori_loop(0, num_steps, body, y)


def ode_sample(sde, score_fn, key, shape, num_steps: int = 500, dtype=jnp.float32):
  """Integrates the probability-flow ODE from the prior at t = 1 to t_min (RK4)."""
  keys = example_keys(as_typed_key(key), shape[0])
  x = prior_sample(sde, keys, shape, dtype)
  velocity = lambda x, t: ode_drift(sde, score_fn, x, jnp.full(shape[:1], t, dtype))
  return _rk4(velocity, x, 1.0, sde.t_min, num_steps)


def _exact_divergence(velocity, x, t):
  """∇·v per example via the full Jacobian (dimension D: D forward passes)."""
  def single(xi):
    flat_v = lambda z: velocity(z.reshape(1, *x.shape[1:]), t[:1]).reshape(-1)
    jac = jax.jacfwd(flat_v)(xi.reshape(-1))
    return jnp.trace(jac)
  return jax.vmap(single)(x)


def _hutchinson_divergence(velocity, x, t, probe):
  """E_z[zᵀ (∂v/∂x) z] with Rademacher z (Hutchinson 1989), one jvp."""
  _, jvp = jax.jvp(lambda z: velocity(z, t), (x,), (probe,))
  return jnp.sum((jvp * probe).reshape(x.shape[0], -1), -1)


def ode_log_likelihood(sde, score_fn, x0, key=None, num_steps: int = 500, exact_divergence: bool = True,
                       end_log_prob=None):
  """log p_{t_min}(x_0) in nats per example: integrate (x, Δlog p) from t_min to 1 with
  d/dt Δ = ∇·v(x, t), then add log p_1(x_1), by default the prior N(0, prior_std² I)
  (`end_log_prob(x_1)` overrides it, e.g. with the exact p_1 of a known model: the VE prior
  N(0, σ_max²) is off by O(|x_1| |x_0| / σ_max²) per example). Hutchinson's estimator (one
  Rademacher probe per example, fixed along the path, drawn from `key`) when
  exact_divergence is False."""
  dtype = x0.dtype
  velocity = lambda x, t: ode_drift(sde, score_fn, x, t)
  if exact_divergence:
    divergence = lambda x, t: _exact_divergence(velocity, x, t)
  else:
    if key is None:
      raise ValueError("Hutchinson's estimator needs a key for its probes")
    keys = example_keys(as_typed_key(key), x0.shape[0])
    probe = jax.vmap(lambda k: jax.random.rademacher(k, x0.shape[1:], dtype))(keys)
    divergence = lambda x, t: _hutchinson_divergence(velocity, x, t, probe)

  def f(state, t_scalar):
    x, _ = state
    t = jnp.full(x0.shape[:1], t_scalar, dtype)
    return velocity(x, t), divergence(x, t)

  x1, delta = _rk4(f, (x0, jnp.zeros(x0.shape[0], dtype)), sde.t_min, 1.0, num_steps)
  return (prior_log_prob(sde, x1) if end_log_prob is None else end_log_prob(x1)) + delta
