"""MCMC samplers of an energy-based model p(x) = exp(-E(x)) / Z (the thesis's eq. 2.22).

The seeds' Algorithm 1 (Langevin dynamics): K steps of

    x_k = x_{k-1} - η ∇_x E(x_{k-1}) + ω_k,   ω_k ~ N(0, s² I),

from Gaussian or uniform noise. Only s² = 2η (the unadjusted Langevin algorithm, ULA) targets
p; for a quadratic energy E = ½ (x - μ)ᵀ A (x - μ) the chain is linear and its stationary law
is N(μ, Σ) with Σ = (I - ηA) Σ (I - ηA)ᵀ + s² I (`langevin_stationary_covariance`): for
E = x²/2 the variance is s² / (2η - η²), which is 1 only as η -> 0 with s² = 2η. MALA adds a
Metropolis-Hastings correction and targets p itself at any step size.

Every sampler runs one compiled loop over steps; chain n draws step k's noise from
fold_in(keys[n], k) (sub-stream 0: the Gaussian, 1: MALA's accept uniform), so a chain's path
does not depend on the batch it runs in. `key` is one key (chain n uses fold_in(key, n)) or one
key per chain. `energy_fn` maps a batch (n, ...) to (n,) energies, row by row.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import keys as keys_lib
from gen_jax.distributions import values_and_input_grads

EnergyFn = Callable[[jax.Array], jax.Array]
NOISE_STREAM, ACCEPT_STREAM = 0, 1
NO_STEP = -1  # `first_nonfinite` of a chain that stayed finite


@dataclasses.dataclass(frozen=True)
class ChainResult:
  """`x` after the last step; `first_nonfinite` (n,): the first step (0-based) at which chain n's
  energy or position was not finite, NO_STEP if none; `acceptance_rate` (n,) for MALA (1 for
  unadjusted samplers); `trajectory` (T, n, ...) every `record_every` steps (from x0) when
  asked for."""
  x: jax.Array
  first_nonfinite: jax.Array
  acceptance_rate: jax.Array
  trajectory: Optional[jax.Array] = None


jax.tree_util.register_dataclass(
    ChainResult, data_fields=["x", "first_nonfinite", "acceptance_rate", "trajectory"], meta_fields=[])


def check_step_size(step_size):
  """Raises on a step size ≤ 0 (when it is a concrete number)."""
  try:
    value = float(step_size)
  except (TypeError, jax.errors.ConcretizationTypeError):
    return
  if not value > 0:
    raise ValueError(f"Langevin step_size={value:g}: the step size must be > 0")


def _per_row_norm(g):
  return jnp.sqrt(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))


def _clip_rows(g, max_norm):
  """Each chain's gradient scaled to norm ≤ max_norm (None: unchanged)."""
  if max_norm is None:
    return g
  scale = jnp.minimum(1.0, max_norm / jnp.maximum(_per_row_norm(g), 1e-12))
  return g * scale.reshape((-1,) + (1,) * (g.ndim - 1))


def _step_draws(chain_keys, step, shape, dtype):
  """(noise ~ N(0, I), accept uniform) of one step for every chain."""
  step_keys = keys_lib.fold_in(chain_keys, step)
  draw = lambda k: keys_lib.normal(keys_lib.fold_in(k, NOISE_STREAM), shape, dtype)
  uniform = lambda k: keys_lib.uniform(keys_lib.fold_in(k, ACCEPT_STREAM), (), dtype)
  return jax.vmap(draw)(step_keys), jax.vmap(uniform)(step_keys)


def _bounded(x, bounds):
  return x if bounds is None else jnp.clip(x, bounds[0], bounds[1])


def _inside(x, bounds):
  if bounds is None:
    return jnp.ones(x.shape[0], bool)
  flat = x.reshape(x.shape[0], -1)
  return jnp.all((flat >= bounds[0]) & (flat <= bounds[1]), axis=1)


def _trajectory(x0, path, record_every: int):
  """x0 then every `record_every`-th position of the scanned path (None when not recorded)."""
  if not record_every:
    return None
  return jnp.concatenate([x0[None], path[record_every - 1::record_every]])


def _update_first_bad(first_bad, step, energies, x):
  finite = jnp.isfinite(energies) & jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1)
  return jnp.where((first_bad == NO_STEP) & ~finite, step, first_bad)


def run_langevin(energy_fn: EnergyFn, x0, key, num_steps: int, step_size, noise_scale=None, *,
                 temperatures=None, grad_clip: Optional[float] = None, bounds=None,
                 record_every: int = 0) -> ChainResult:
  """Langevin dynamics x_k = clip(x_{k-1} - η ∇E(x_{k-1}) / T_k + s ω_k), ω_k ~ N(0, I).

  s = noise_scale (None: √(2η), ULA); `temperatures` (num_steps,) anneal E/T_k (None: T = 1);
  `grad_clip` bounds each chain's gradient norm (off by default: it changes the law sampled);
  `bounds` (low, high) clip x to a box after each step (a model on [low, high]^D)."""
  check_step_size(step_size)
  if int(num_steps) < 0:
    raise ValueError(f"num_steps={num_steps}: the number of Langevin steps must be ≥ 0")
  x0 = jnp.asarray(x0)
  chain_keys = keys_lib.example_keys(key, x0.shape[0])
  step_size = jnp.asarray(step_size, x0.dtype)
  scale = jnp.sqrt(2.0 * step_size) if noise_scale is None else jnp.asarray(noise_scale, x0.dtype)
  temps = jnp.ones(num_steps, x0.dtype) if temperatures is None else jnp.asarray(temperatures, x0.dtype)
  if temps.shape != (num_steps,):
    raise ValueError(f"temperatures has shape {temps.shape}, expected ({num_steps},)")

  def body(carry, inputs):
    x, first_bad = carry
    step, temperature = inputs
    energies, grads = values_and_input_grads(energy_fn, x)
    first_bad = _update_first_bad(first_bad, step, energies, x)
    noise, _ = _step_draws(chain_keys, step, x.shape[1:], x.dtype)
    x = _bounded(x - step_size * _clip_rows(grads, grad_clip) / temperature + scale * noise, bounds)
    return (x, first_bad), (x if record_every else None)

  first_bad = jnp.full(x0.shape[0], NO_STEP, jnp.int32)
  (x, first_bad), path = jax.lax.scan(body, (x0, first_bad), (jnp.arange(num_steps), temps))
  return ChainResult(x, first_bad, jnp.ones(x0.shape[0], x0.dtype), _trajectory(x0, path, record_every))


def langevin_sample(energy_fn: EnergyFn, x0, key, num_steps: int, step_size, noise_scale=None):
  """x after `num_steps` updates x <- x - step_size ∇E(x) + noise_scale N(0, I); noise_scale None
  is √(2 step_size) (ULA, for p ∝ exp(-E)), any other value the seeds' Algorithm 1."""
  return run_langevin(energy_fn, x0, key, num_steps, step_size, noise_scale).x


def annealed_langevin_sample(energy_fn: EnergyFn, x0, key, temperatures, step_size, **options):
  """ULA on exp(-E / T_k) with T_k = temperatures[k] (e.g. from hot to 1), one step each."""
  temperatures = jnp.asarray(temperatures)
  return run_langevin(energy_fn, x0, key, temperatures.shape[0], step_size,
                      temperatures=temperatures, **options).x


def uniform_init(key, num_chains: int, event_shape, low: float, high: float, dtype=jnp.float32):
  """Short-run starting points: x0 ~ U[low, high]^D per chain (chain n from fold_in(key, n))."""
  chain_keys = keys_lib.example_keys(key, num_chains)
  return jax.vmap(lambda k: keys_lib.uniform(k, tuple(event_shape), dtype, low, high))(chain_keys)


def short_run_sample(energy_fn: EnergyFn, key, num_chains: int, event_shape, num_steps: int,
                     step_size, low: float, high: float, noise_scale=None, **options):
  """Nijkamp et al. (2019): `num_steps` non-persistent Langevin steps from U[low, high]^D."""
  init_key, run_key = jax.random.split(keys_lib.as_typed_key(key))
  x0 = uniform_init(init_key, num_chains, event_shape, low, high)
  return run_langevin(energy_fn, x0, run_key, num_steps, step_size, noise_scale,
                      bounds=(low, high), **options).x


def mala_log_proposal(x_to, x_from, grad_from, step_size):
  """log q(x_to | x_from) up to a constant: -‖x_to - x_from + η ∇E(x_from)‖² / (4η)."""
  diff = (x_to - x_from + step_size * grad_from).reshape(x_to.shape[0], -1)
  return -jnp.sum(diff ** 2, axis=1) / (4.0 * step_size)


def run_mala(energy_fn: EnergyFn, x0, key, num_steps: int, step_size, *, bounds=None,
             inverse_temperature=1.0, record_every: int = 0) -> ChainResult:
  """Metropolis-adjusted Langevin: propose x' = x - η ∇E(x) + √(2η) ω, accept with probability
  min(1, exp(-βE(x') + βE(x) + log q(x | x') - log q(x' | x))) for the target exp(-βE) (on the
  box `bounds`: proposals outside it are rejected). Returns the chains and their acceptance
  rates."""
  check_step_size(step_size)
  x0 = jnp.asarray(x0)
  chain_keys = keys_lib.example_keys(key, x0.shape[0])
  step_size = jnp.asarray(step_size, x0.dtype)
  beta = jnp.asarray(inverse_temperature, x0.dtype)
  tempered = lambda x: beta * energy_fn(x)
  energies0, grads0 = values_and_input_grads(tempered, x0)

  def body(carry, step):
    x, energies, grads, accepted, first_bad = carry
    first_bad = _update_first_bad(first_bad, step, energies, x)
    noise, u = _step_draws(chain_keys, step, x.shape[1:], x.dtype)
    proposal = x - step_size * grads + jnp.sqrt(2.0 * step_size) * noise
    prop_energies, prop_grads = values_and_input_grads(tempered, proposal)
    log_ratio = (energies - prop_energies + mala_log_proposal(x, proposal, prop_grads, step_size)
                 - mala_log_proposal(proposal, x, grads, step_size))
    accept = (jnp.log(u) < log_ratio) & _inside(proposal, bounds) & jnp.isfinite(prop_energies)
    pick = lambda new, old: jnp.where(accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
    carry = (pick(proposal, x), pick(prop_energies, energies), pick(prop_grads, grads),
             accepted + accept, first_bad)
    return carry, (carry[0] if record_every else None)

  init = (x0, energies0, grads0, jnp.zeros(x0.shape[0], jnp.int32),
          jnp.full(x0.shape[0], NO_STEP, jnp.int32))
  (x, _, _, accepted, first_bad), path = jax.lax.scan(body, init, jnp.arange(num_steps))
  return ChainResult(x, first_bad, accepted / max(int(num_steps), 1), _trajectory(x0, path, record_every))


def mala_sample(energy_fn: EnergyFn, x0, key, num_steps: int, step_size, **options):
  """(x after `num_steps` MALA steps, acceptance rate per chain)."""
  result = run_mala(energy_fn, x0, key, num_steps, step_size, **options)
  return result.x, result.acceptance_rate


@dataclasses.dataclass(frozen=True)
class Sampler:
  """A sampler by name: run(energy_fn, x0, key, num_steps, step_size, **options) -> ChainResult."""
  run: Callable[..., ChainResult]
  adjusted: bool  # a Metropolis-Hastings correction: targets exp(-E) itself at any step size


SAMPLERS: Mapping[str, Sampler] = {
    "langevin": Sampler(run_langevin, adjusted=False),
    "mala": Sampler(lambda f, x0, key, n, eta, noise_scale=None, **o: run_mala(f, x0, key, n, eta, **o),
                    adjusted=True),
}


def get_sampler(name: str) -> Sampler:
  if name not in SAMPLERS:
    raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
  return SAMPLERS[name]


def langevin_stationary_covariance(precision, step_size: float, noise_scale: Optional[float] = None):
  """The stationary covariance of Langevin dynamics on E = ½ (x - μ)ᵀ A (x - μ): the Σ solving
  Σ = (I - ηA) Σ (I - ηA)ᵀ + s² I (s = noise_scale, default √(2η)); it exists when every
  eigenvalue of I - ηA lies in (-1, 1). The stationary mean is μ."""
  a = np.asarray(precision, np.float64)
  d = a.shape[0]
  s2 = 2.0 * step_size if noise_scale is None else float(noise_scale) ** 2
  m = np.eye(d) - step_size * a
  if np.max(np.abs(np.linalg.eigvals(m))) >= 1:
    raise ValueError(f"step_size={step_size:g} is too large for this precision: the chain diverges "
                     f"(needs η < 2 / λ_max = {2 / np.max(np.linalg.eigvalsh(a)):g})")
  vec = np.linalg.solve(np.eye(d * d) - np.kron(m, m), s2 * np.eye(d).ravel())
  return vec.reshape(d, d)
