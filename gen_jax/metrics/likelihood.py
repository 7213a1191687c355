"""Likelihood units: nats <-> bits per dimension, with the dequantization offset for 8-bit data."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

PIXEL_BINS = 256


def mean_and_sem(values) -> tuple[float, float]:
  """The mean of per-example values and its standard error, std (ddof 1) / √n (0 for n = 1)."""
  values = np.asarray(values)
  sem = float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
  return float(values.mean()), sem


def nats_to_bpd(nats, num_dims: int):
  """bits/dim = nats / (D ln 2)."""
  return nats / (num_dims * math.log(2.0))


def bpd_to_nats(bpd, num_dims: int):
  return bpd * num_dims * math.log(2.0)


def continuous_nll_to_bpd(nll_nats, num_dims: int, num_bins: int = PIXEL_BINS,
                          interval_width: float = 1.0):
  """bits/dim of 8-bit data from a continuous density's NLL on dequantized data.

  A density on data scaled to an interval of width w (1 for [0, 1], 2 for [-1, 1]) with
  `num_bins` levels has bins of width w / num_bins, so the discrete NLL is bounded by
  nll + D log(num_bins / w) (Theis et al. 2016); in bits per dimension that is
  (nll / D + log(num_bins / w)) / ln 2.
  """
  offset = num_dims * jnp.log(num_bins / interval_width)
  return nats_to_bpd(nll_nats + offset, num_dims)


def importance_log_mean(log_w):
  """(log mean_m w_m, std(w) / (√M mean(w))) of importance weights given as logs: an AIS
  estimate log Ẑ - log Z_base and its standard error by the delta method (from w / max w,
  for stability)."""
  num = log_w.shape[0]
  ratio = jnp.exp(log_w - jnp.max(log_w))
  std_err = jnp.std(ratio) / (jnp.mean(ratio) * math.sqrt(num))
  return jax.nn.logsumexp(log_w) - math.log(num), std_err
