"""The discretized logistic mixture (PixelCNN++, Salimans et al. 2017) on images in [-1, 1].

A value x on the grid of `num_bins` levels owns the bin [x - h, x + h], h = 1 / (num_bins - 1),
the edge bins open-ended. Under a logistic L(m, s) its mass is σ(a) - σ(b) with
a = (x + h - m)/s, b = (x - h - m)/s, and

    log(σ(a) - σ(b)) = log σ(a) + log σ(-b) + log(1 - e^{-(a - b)}),   a - b = 2h/s,

since σ(a) - σ(b) = σ(a)(1 - σ(b))(1 - e^{b-a}). Every term is computed stably for any a, b
(log_sigmoid and log(-expm1)), and a - b is taken as 2h/s rather than as a difference of two
large numbers, so the far tails get the exact bin mass where PixelCNN++'s code falls back to
density × bin width. The open edges are a = +∞ or b = -∞, where the matching terms vanish.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.distributions import NUM_PIXEL_LEVELS


def half_bin_width(num_bins: int) -> float:
  return 1.0 / (num_bins - 1)


def discretized_logistic_log_prob(x, mean, log_scale, num_bins: int = NUM_PIXEL_LEVELS):
  """log P(bin of x) under the logistic L(mean, e^log_scale), elementwise (see the module)."""
  h = half_bin_width(num_bins)
  inv_scale = jnp.exp(-log_scale)
  centred = x - mean
  upper = jnp.where(x > 1.0 - h, jnp.inf, (centred + h) * inv_scale)
  lower = jnp.where(x < -1.0 + h, -jnp.inf, (centred - h) * inv_scale)
  width = jnp.where((x > 1.0 - h) | (x < -1.0 + h), jnp.inf, 2.0 * h * inv_scale)
  return jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower) + jnp.log(-jnp.expm1(-width))


def discretized_logistic_mixture_log_prob(x, logit_weights, means, log_scales,
                                          num_bins: int = NUM_PIXEL_LEVELS):
  """log Σ_k π_k P_k(bin of x), π = softmax(logit_weights); x (...,), parameters (..., K)."""
  components = discretized_logistic_log_prob(x[..., None], means, log_scales, num_bins)
  return jax.nn.logsumexp(jax.nn.log_softmax(logit_weights, axis=-1) + components, axis=-1)


def quantize(x, num_bins: int = NUM_PIXEL_LEVELS):
  """The grid value nearest to x, after clipping to [-1, 1]."""
  levels = num_bins - 1
  return jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * (levels / 2.0)) * (2.0 / levels) - 1.0


# ----------------------------------------------------------------------------
# PixelCNN++'s pixel model: one mixture component per pixel for all its channels, channel c's
# mean shifted linearly by the values of the channels before it (R -> G -> B):
#   m'_G = m_G + α x_R,   m'_B = m_B + β x_R + γ x_G,   α, β, γ = tanh(network outputs).


def pixel_mixture_size(channels: int, num_mixtures: int) -> int:
  """Network outputs per pixel: K logits + K·C means + K·C log-scales + K·C(C-1)/2 coefficients."""
  return num_mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def split_pixel_mixture(outputs, channels: int, num_mixtures: int):
  """(..., pixel_mixture_size) -> logit_weights (..., K), means, log_scales (..., C, K),
  coefficients (..., C(C-1)/2, K) in (-1, 1)."""
  k, c = num_mixtures, channels
  logits, rest = outputs[..., :k], outputs[..., k:]
  per_channel = rest[..., :2 * c * k].reshape(*rest.shape[:-1], 2, c, k)
  coefficients = jnp.tanh(rest[..., 2 * c * k:].reshape(*rest.shape[:-1], c * (c - 1) // 2, k))
  return logits, per_channel[..., 0, :, :], per_channel[..., 1, :, :], coefficients


def coupled_means(means, coefficients, x):
  """m'_c = m_c + Σ_{c' < c} coeff_{c,c'} x_{c'}: means (..., C, K), x (..., C) -> (..., C, K)."""
  channels = means.shape[-2]
  shifted, pair = [means[..., 0, :]], 0
  for c in range(1, channels):
    shift = sum(coefficients[..., pair + j, :] * x[..., j, None] for j in range(c))
    shifted.append(means[..., c, :] + shift)
    pair += c
  return jnp.stack(shifted, axis=-2)


def pixel_mixture_log_prob(x, outputs, num_mixtures: int, num_bins: int = NUM_PIXEL_LEVELS):
  """log p(pixel) = log Σ_k π_k Π_c P(x_c | m'_{c,k}, s_{c,k}): x (..., C), outputs
  (..., pixel_mixture_size(C, K)) -> (...,), summed over the pixel's channels."""
  channels = x.shape[-1]
  logits, means, log_scales, coefficients = split_pixel_mixture(outputs, channels, num_mixtures)
  means = coupled_means(means, coefficients, x)
  per_channel = discretized_logistic_log_prob(x[..., None], means, log_scales, num_bins)
  return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + per_channel.sum(-2), axis=-1)


def sample_pixel_mixture(key, outputs, channels: int, num_mixtures: int,
                         num_bins: int = NUM_PIXEL_LEVELS):
  """One pixel (..., C) per row of outputs: one component for all channels, channels in order."""
  component_key, noise_key = jax.random.split(key)
  logits, means, log_scales, coefficients = split_pixel_mixture(outputs, channels, num_mixtures)
  k = jax.random.categorical(component_key, logits, axis=-1)
  pick = lambda a: jnp.take_along_axis(a, k[..., None, None], axis=-1)[..., 0]
  means, log_scales, coefficients = pick(means), pick(log_scales), pick(coefficients)
  noise = jax.random.logistic(noise_key, means.shape, means.dtype)
  values, pair = [], 0
  for c in range(channels):
    mean = means[..., c] + sum(coefficients[..., pair + j] * values[j] for j in range(c))
    pair += c
    values.append(quantize(mean + jnp.exp(log_scales[..., c]) * noise[..., c], num_bins))
  return jnp.stack(values, axis=-1)
