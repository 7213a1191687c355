"""Variational diffusion models with a learned SNR (Kingma, Salimans, Poole & Ho 2021).

z_t = α_t x + σ_t ε with α_t² = sigmoid(−γ(t)), σ_t² = sigmoid(γ(t)), SNR(t) = exp(−γ(t)),
t ∈ [0, 1]. Data x are 8-bit pixels mapped to [-1, 1] (bin centres). `gamma_fn(t)` is the
schedule (e.g. nets.diffusion.LearnedGamma), `eps_fn(z_t, gamma_t)` the network. Per example
(nats), the continuous-time bound (VDM eq. 17):
  prior_kl      KL(q(z_1 | x) ‖ N(0, I))
  recon_nll     −log p(x | z_0), p(x_i | z_0) ∝ exp(−(z_0,i/α_0 − x_k)² α_0² / (2σ_0²)) over the
                256 pixel values x_k
  diffusion     ½ γ'(t) ‖ε − ε̂(z_t, γ_t)‖², t ~ U(0, 1): an unbiased estimate of
                ½ ∫ γ'(t) ‖ε − ε̂‖² dt = −½ ∫ SNR'(t) ‖x − x̂‖² dt
  nelbo         their sum.
With fixed end points γ(0), γ(1) the expected bound does not depend on γ in between (eq. 18),
so the schedule is trained to minimise the variance of the estimate: η gets ∇_η E[L_diff²]
(VDM section 5.2, rescaled by 1 / (2 E[L_diff])), θ gets ∇_θ E[L].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.distributions import sum_per_example
from gen_jax.keys import example_keys

PIXEL_VALUES = 256


def alpha_sigma(gamma):
  """(α, σ) with α² = sigmoid(−γ), σ² = sigmoid(γ)."""
  return jnp.sqrt(jax.nn.sigmoid(-gamma)), jnp.sqrt(jax.nn.sigmoid(gamma))


def _bcast(values, x):
  return values.reshape(values.shape + (1,) * (x.ndim - values.ndim))


def pixel_grid(num_values: int = PIXEL_VALUES):
  """The bin centres c_k = (2k + 1) / num_values − 1, k = 0..num_values−1."""
  return (2.0 * jnp.arange(num_values) + 1.0) / num_values - 1.0


def pixel_index(x, num_values: int = PIXEL_VALUES):
  """k of data on the 8-bit grid x = 2k/(num_values − 1) − 1 (the pipeline's [-1, 1] pixels)."""
  return jnp.round((x + 1.0) / 2.0 * (num_values - 1)).astype(jnp.int32)


def nearest_bin(z, num_values: int = PIXEL_VALUES):
  """k of the bin centre nearest z, clipped to 0..num_values−1."""
  return jnp.clip(jnp.round((z + 1.0) * num_values / 2.0 - 0.5), 0, num_values - 1).astype(jnp.int32)


def bin_centre(k, num_values: int = PIXEL_VALUES):
  return (2.0 * k + 1.0) / num_values - 1.0


def prior_kl(x, gamma_1):
  """KL(N(α_1 x, σ_1²) ‖ N(0, 1)) summed over dimensions."""
  alpha, sigma = alpha_sigma(gamma_1)
  var = sigma ** 2
  return sum_per_example(0.5 * (var + jnp.square(alpha * x) - jnp.log(var) - 1.0))


def recon_nll(index, z_0, gamma_0, num_values: int = PIXEL_VALUES):
  """−log p(x = c_index | z_0) with the softmax decoder over the bin centres c_k, summed over
  dimensions."""
  alpha, sigma = alpha_sigma(gamma_0)
  logits = -0.5 * jnp.square(z_0[..., None] / alpha - pixel_grid(num_values)) * (alpha / sigma) ** 2
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -sum_per_example(jnp.take_along_axis(log_probs, index[..., None], axis=-1)[..., 0])


def gamma_and_derivative(gamma_fn, t):
  """(γ(t), γ'(t)) elementwise by forward-mode differentiation."""
  return jax.jvp(gamma_fn, (t,), (jnp.ones_like(t),))


def diffusion_loss(gamma_fn, eps_fn, x, t, eps, variance_gradient: bool = True):
  """L_diff = ½ γ'(t) ‖ε − ε̂(z_t, γ_t)‖² per example, z_t = α_t x + σ_t ε (any real x).

  Its value is the same either way; with `variance_gradient` the batch mean's gradient is
  ∇ mean(L) for the network and ∇_η mean(L²) / (2 mean(L)) for the schedule (the variance
  gradient in the loss's own units, so one global-norm clip and learning rate serve both):
  with s = ‖ε − ε̂‖², ∂L²/∂η = 2 L (½ γ' ∂s/∂γ_t · ∂γ_t/∂η + ½ s · ∂γ'/∂η), where ∂s/∂γ_t
  (each example's s depends only on its own γ_t) comes from one forward-mode pass."""
  g, dg = gamma_and_derivative(gamma_fn, t)

  def squared_error(g):
    alpha, sigma = alpha_sigma(g)
    z_t = _bcast(alpha, x) * x + _bcast(sigma, x) * eps
    return sum_per_example(jnp.square(eps - eps_fn(z_t, g)))

  if not variance_gradient:
    return 0.5 * dg * squared_error(g)
  g_fixed, dg_fixed = jax.lax.stop_gradient(g), jax.lax.stop_gradient(dg)
  sq = squared_error(g_fixed)
  loss = 0.5 * dg_fixed * sq
  _, dsq_dg = jax.jvp(squared_error, (g_fixed,), (jnp.ones_like(g_fixed),))
  weight = jax.lax.stop_gradient(loss / jnp.mean(loss))
  surrogate = weight * (0.5 * dg_fixed * jax.lax.stop_gradient(dsq_dg) * g
                        + 0.5 * jax.lax.stop_gradient(sq) * dg)
  return loss + surrogate - jax.lax.stop_gradient(surrogate)


def continuous_loss(gamma_fn, eps_fn, x, key, variance_gradient: bool = True):
  """(loss per example, terms) of the continuous-time bound; see the module docstring. `x`:
  pixels on the 8-bit grid in [-1, 1]; the model works with their bin centres.

  Randomness per example from `key` (one key, or one per example): t from fold 0, ε for z_t
  from fold 1, ε for z_0 from fold 2. The loss's value is nelbo; its gradient is ∇ nelbo for the
  network and, when `variance_gradient`, ∇_η L_diff² for the schedule (else ∇_η nelbo)."""
  keys = example_keys(key, x.shape[0])
  index = pixel_index(x)
  x = bin_centre(index).astype(x.dtype)
  t = jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, 0), ()))(keys)
  eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), x.shape[1:], x.dtype))(keys)
  eps_0 = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 2), x.shape[1:], x.dtype))(keys)
  ends = gamma_fn(jnp.array([0.0, 1.0]))
  gamma_0, gamma_1 = ends[0], ends[1]
  prior = prior_kl(x, gamma_1)
  alpha_0, sigma_0 = alpha_sigma(gamma_0)
  recon = recon_nll(index, alpha_0 * x + sigma_0 * eps_0, gamma_0)
  diff = diffusion_loss(gamma_fn, eps_fn, x, t, eps, variance_gradient)
  nelbo = prior + recon + diff
  terms = {"prior_kl": prior, "recon_nll": recon, "diffusion": diff, "nelbo": nelbo,
           "gamma_0": jnp.broadcast_to(gamma_0, t.shape), "gamma_1": jnp.broadcast_to(gamma_1, t.shape)}
  return nelbo, terms


def sample_step(gamma_fn, eps_fn, z_t, t, s, noise):
  """z_s ~ q(z_s | z_t, x̂) for s < t (VDM eq. 29 with x̂ from ε̂):
  z_s = α_s/α_t (z_t − c σ_t ε̂) + σ_s √c z,  c = 1 − exp(γ_s − γ_t)."""
  g_t, g_s = gamma_fn(t), gamma_fn(s)
  c = -jnp.expm1(g_s - g_t)
  alpha_t, sigma_t = alpha_sigma(g_t)
  alpha_s, sigma_s = alpha_sigma(g_s)
  eps_hat = eps_fn(z_t, jnp.broadcast_to(g_t, z_t.shape[:1]))
  mean = _bcast(alpha_s / alpha_t, z_t) * (z_t - _bcast(c * sigma_t, z_t) * eps_hat)
  return mean + _bcast(sigma_s * jnp.sqrt(c), z_t) * noise


def sample(gamma_fn, eps_fn, key, shape, num_steps: int, dtype=jnp.float32):
  """Ancestral sampling over t_i = i / num_steps from z_1 ~ N(0, I) to z_0, then x = the
  decoder's mode (the bin nearest z_0 / α_0), returned on the data's 8-bit grid in [-1, 1].
  Per-example keys: step i's noise from fold i."""
  keys = example_keys(key, shape[0])
  draw = lambda step: jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, step), shape[1:],
                                                           dtype))(keys)
  z = draw(num_steps)

  def body(i, z):
    step = num_steps - i
    t = jnp.full(shape[:1], step / num_steps, dtype)
    s = jnp.full(shape[:1], (step - 1) / num_steps, dtype)
    return sample_step(gamma_fn, eps_fn, z, t, s, draw(step - 1))

  z_0 = jax.lax.fori_loop(0, num_steps, body, z)
  alpha_0, _ = alpha_sigma(gamma_fn(jnp.zeros(())))
  return 2.0 * nearest_bin(z_0 / alpha_0) / (PIXEL_VALUES - 1.0) - 1.0
