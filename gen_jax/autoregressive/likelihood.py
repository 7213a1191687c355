"""The chain rule p(x) = Π_i p(x_i | x_<i) (thesis seed 003, eq. 2.19): exact log-likelihoods
from an autoregressive network's outputs, the training losses, and sampling one position at a
time as one compiled loop.

An autoregressive network maps x to per-position outputs whose entry i depends only on the
positions before i (MADE, PixelCNN, a causal transformer); the log-likelihood is then one
network pass, and sampling takes one pass per position (or one cached step, for a transformer).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.distributions import bernoulli_log_prob, normal_log_prob, sum_per_example
from gen_jax.keys import fold_in
from gen_jax.metrics.likelihood import nats_to_bpd
from gen_jax.autoregressive.discretized_logistic import pixel_mixture_log_prob

def bernoulli_log_likelihood(logits, x):
  """log p(x) = Σ_i [x_i ℓ_i - softplus(ℓ_i)] for binary x and the logits ℓ_i of p(x_i = 1 | x_<i)."""
  return sum_per_example(bernoulli_log_prob(x, logits))


def categorical_log_likelihood(logits, tokens):
  """log p(x) = Σ_t log softmax(ℓ_t)[x_t]: logits (batch, L, V), integer tokens (batch, L)."""
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return jnp.sum(jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0], axis=-1)


def pixel_mixture_log_likelihood(outputs, x, num_mixtures: int):
  """log p(x) = Σ_pixels log p(pixel | pixels before it), PixelCNN++'s discretized logistic
  mixture: x (batch, H, W, C) in [-1, 1], outputs (batch, H, W, pixel_mixture_size)."""
  return sum_per_example(pixel_mixture_log_prob(x, outputs, num_mixtures))


def nll_terms(log_likelihood, num_dims: int) -> dict:
  """Batch means: `nll` (nats per example) and `nll_bpd` (bits per dimension)."""
  nll = -jnp.mean(log_likelihood)
  return {"nll": nll, "nll_bpd": nats_to_bpd(nll, num_dims)}


def nll_loss(log_likelihood_fn: Callable, params, x, *args):
  """Maximum likelihood: (mean NLL, named terms), log_likelihood_fn(params, x, *args) -> (batch,)."""
  terms = nll_terms(log_likelihood_fn(params, x, *args), math.prod(x.shape[1:]))
  return terms["nll"], terms


# ----------------------------------------------------------------------------
# Sampling, one position at a time. A position is an entry of a vector (batch, D), a pixel of an
# image (batch, H, W, C) with all its channels, or a token of a sequence (batch, L). Position p
# of example n draws from fold_in(keys[n], p), so a sample depends on its key alone.


def event_layout(event_shape) -> tuple[int, int]:
  """(positions, values per position): (D,) -> (D, 1); (H, W, C) -> (H·W, C)."""
  if len(event_shape) == 1:
    return event_shape[0], 1
  return math.prod(event_shape[:-1]), event_shape[-1]


def sample_in_order(outputs_fn: Callable, draw_fn: Callable, keys, event_shape, dtype=jnp.float32,
                    orders=None):
  """x ~ Π_p p(x_p | x_<p) by one full pass of `outputs_fn` per position, in a fori_loop.

  outputs_fn(x (n, *event_shape)) -> (n, *positions, outputs per position); draw_fn(key,
  outputs at one position (O,)) -> the position's values (C,). Entries not yet drawn are 0.
  `orders` (n, positions): the position example n draws at each step (default: 0, 1, ...);
  position p always draws from fold_in(keys[n], p).
  """
  n = keys.shape[0]
  positions, per_position = event_layout(tuple(event_shape))
  rows = jnp.arange(n)
  if orders is None:
    orders = jnp.broadcast_to(jnp.arange(positions), (n, positions))

  def body(t, canvas):
    p = orders[:, t]
    outputs = outputs_fn(canvas.reshape(n, *event_shape)).reshape(n, positions, -1)[rows, p]
    position_keys = jax.vmap(fold_in)(keys, p)
    values = jax.vmap(draw_fn)(position_keys, outputs).reshape(n, per_position)
    return canvas.at[rows, p].set(values.astype(dtype))

  canvas = jnp.zeros((n, positions, per_position), dtype)
  return jax.lax.fori_loop(0, positions, body, canvas).reshape(n, *event_shape)


def sample_with_cache(step_fn: Callable, cache, draw_fn: Callable, keys, length: int,
                      dtype=jnp.int32):
  """Tokens x_0..x_{L-1} by a cached step per position, in a lax.scan:
  step_fn(cache, previous tokens (n,), position) -> (logits (n, V), cache); position 0's
  previous tokens are ignored (the network's start token). Draws as `sample_in_order`."""
  n = keys.shape[0]

  def body(carry, p):
    cache, previous = carry
    logits, cache = step_fn(cache, previous, p)
    tokens = jax.vmap(draw_fn)(jax.vmap(lambda k: fold_in(k, p))(keys), logits).astype(dtype)
    return (cache, tokens), tokens

  _, tokens = jax.lax.scan(body, (cache, jnp.zeros(n, dtype)), jnp.arange(length))
  return tokens.T


def draw_bernoulli(key, logits):
  """x ~ Bernoulli(σ(logits)), entrywise."""
  return jax.random.bernoulli(key, jax.nn.sigmoid(logits)).astype(logits.dtype)


def draw_categorical(key, logits):
  """x ~ softmax(logits) over the last axis (Gumbel-max: argmax(logits + G))."""
  return jax.random.categorical(key, logits, axis=-1)


# ----------------------------------------------------------------------------
# Continuous vectors: p(x_d | x_<d) a mixture of K Gaussians whose parameters (weight logits,
# means, log-scales: 3K per dimension) come from an autoregressive network (e.g. a MADE with
# params_per_dim = 3K), so p(x) = p(x_1) p(x_2 | x_1) ... is an exact density.


def split_gaussian_mixture(outputs):
  """(..., 3K) -> weight logits, means, log-scales, each (..., K)."""
  return jnp.split(outputs, 3, axis=-1)


def gaussian_mixture_conditionals_log_likelihood(outputs, x):
  """log p(x) = Σ_d log Σ_k π_dk N(x_d; μ_dk, σ_dk²): outputs (batch, D, 3K), x (batch, D)."""
  logits, means, log_scales = split_gaussian_mixture(outputs)
  log_normal = normal_log_prob(x[..., None], means, 2.0 * log_scales)
  return jnp.sum(jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + log_normal, axis=-1), axis=-1)


def draw_gaussian_mixture(key, outputs):
  """x_d ~ Σ_k π_k N(μ_k, σ_k²) from one position's (3K,) outputs."""
  component_key, noise_key = jax.random.split(key)
  logits, means, log_scales = split_gaussian_mixture(outputs)
  k = jax.random.categorical(component_key, logits)
  return means[k] + jnp.exp(log_scales[k]) * jax.random.normal(noise_key, (), outputs.dtype)
