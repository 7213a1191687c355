"""Dequantization of 8-bit images for continuous flows, and the bound it gives.

An image x ∈ {0, 1/255, ..., 1}^D holds bins k = 255x. A continuous density p_v on [0, 1]^D
puts mass P(k) = ∫_{bin} p_v = 256^{-D} E_{u ~ q}[p_v((k + u)/256) / q(u | k)] on bin k, so
(Jensen; Theis et al. 2016, Ho et al. 2019)

    log P(k) ≥ E_q[log p_v((k + u)/256) − log q(u | k)] − D log 256,

with q uniform (log q = 0: uniform dequantization) or learned (variational dequantization).
The flow sees y = logit(α + (1 − 2α) v) (RealNVP's preprocessing), so
log p_v(v) = log p_y(y) + Σ_d log|dy_d/dv_d|. Reported in bits/dim: −bound / (D ln 2), which
already contains the offset log2 256 = 8 bits/dim of the bins' width.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.distributions import standard_normal_log_prob
from gen_jax.flows import density as flow_density
from gen_jax.metrics.likelihood import nats_to_bpd

PIXEL_BINS = 256
PIXEL_MAX = PIXEL_BINS - 1
LOGIT_ALPHA = 0.05  # RealNVP: y = logit(α + (1 - 2α) v), away from the logit's poles

# (params, bins k (batch, ...), keys (batch,)) -> (u in [0, 1)^D, log q(u | k) per example)
DequantizeFn = Callable


def to_bins(x_unit):
  """Pixel values k ∈ {0, ..., 255} of images scaled to [0, 1]."""
  return jnp.round(x_unit * PIXEL_MAX)


def uniform_dequantizer(params, bins, keys):
  """u ~ U[0, 1)^D per example (keys[i] for example i); log q = 0."""
  u = jax.vmap(lambda k, b: jax.random.uniform(k, b.shape, b.dtype))(keys, bins)
  return u, jnp.zeros(bins.shape[:1], bins.dtype)


def variational_dequantizer(noise_fn) -> DequantizeFn:
  """q(u | k): u = sigmoid(h), (h, log σ) = noise_fn(params, k, ε) with ε ~ N(0, I) from
  keys[i]; h = μ(k) + σ(k) ε for a learned μ, σ (Ho et al. 2019's variational dequantization
  with a logit-normal q)."""

  def dequantize(params, bins, keys):
    eps = jax.vmap(lambda k, b: jax.random.normal(k, b.shape, b.dtype))(keys, bins)
    pre_sigmoid, log_scale = noise_fn(params, bins, eps)
    return jax.nn.sigmoid(pre_sigmoid), logit_normal_log_q(eps, pre_sigmoid, log_scale)

  return dequantize


def logit_normal_log_q(eps, pre_sigmoid, log_scale):
  """log q(u | k) of u = sigmoid(h), h = μ + σ ε: log N(ε) − log σ − log sigmoid'(h), summed."""
  log_sigmoid_derivative = -jax.nn.softplus(-pre_sigmoid) - jax.nn.softplus(pre_sigmoid)
  terms = standard_normal_log_prob(eps) - log_scale - log_sigmoid_derivative
  return jnp.sum(terms.reshape(eps.shape[0], -1), axis=-1)


def logit_preprocess(v, alpha: float = LOGIT_ALPHA):
  """y = logit(s), s = α + (1 − 2α) v; returns (y, Σ log|dy/dv|) per example."""
  s = alpha + (1 - 2 * alpha) * v
  y = jnp.log(s) - jnp.log1p(-s)
  log_det = math.log(1 - 2 * alpha) - jnp.log(s) - jnp.log1p(-s)
  return y, jnp.sum(log_det.reshape(v.shape[0], -1), axis=-1)


def logit_postprocess(y, alpha: float = LOGIT_ALPHA):
  """The inverse map y -> v = (sigmoid(y) − α)/(1 − 2α), clipped to [0, 1]."""
  return jnp.clip((jax.nn.sigmoid(y) - alpha) / (1 - 2 * alpha), 0.0, 1.0)


def to_pixels(v):
  """Continuous v ∈ [0, 1] to the pixel value of its bin, in [0, 1]: floor(256 v)/255."""
  return jnp.clip(jnp.floor(v * PIXEL_BINS), 0, PIXEL_MAX) / PIXEL_MAX


def dequantized_nll_terms(flow_fn, dequantize_fn: DequantizeFn, params, x_unit, keys) -> dict:
  """Per-example terms of the bound above: `nll` (nats, −bound on log P(k)), `nll_bpd`,
  `log_q` and `flow_log_prob` (log p_y(y) of the flow in model space)."""
  bins = to_bins(x_unit)
  u, log_q = dequantize_fn(params, bins, keys)
  v = (bins + u) / PIXEL_BINS
  y, log_det = logit_preprocess(v)
  flow = flow_density.nll_terms(flow_fn, params, y)
  num_dims = math.prod(x_unit.shape[1:])
  bound = flow["log_prob"] + log_det - log_q - num_dims * math.log(PIXEL_BINS)
  return {"nll": -bound, "nll_bpd": nats_to_bpd(-bound, num_dims), "log_q": log_q,
          "flow_log_prob": flow["log_prob"]}


def dequantized_nll_loss(flow_fn, dequantize_fn: DequantizeFn, params, x_unit, keys):
  """Maximum likelihood on 8-bit images: (mean bound NLL, batch means of the terms)."""
  terms = {k: jnp.mean(v) for k, v in dequantized_nll_terms(flow_fn, dequantize_fn, params,
                                                            x_unit, keys).items()}
  return terms["nll"], terms
