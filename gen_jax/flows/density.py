"""A flow's density and its training loss (the seeds' eqs. 2.9-2.18).

`flow_fn(params, x) -> (z, log|det ∂z/∂x|)` is the density direction of any flow (a
`Bijector`'s `inverse_and_log_det`, or a `gen_jax.nets.flows.Flow`'s `apply`), over a standard
normal base p(z) = N(0, I).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.distributions import standard_normal_log_prob

FlowFn = Callable  # (params, x) -> (z, log_det)


def log_prob(flow_fn: FlowFn, params, x):
  """log p(x) = Σ_d log N(z_d; 0, 1) + log|det ∂z/∂x|, z = f⁻¹(x); (batch,) in nats."""
  return nll_terms(flow_fn, params, x)["log_prob"]


def nll_terms(flow_fn: FlowFn, params, x) -> dict:
  """Per-example terms: `log_prob`, `nll` = -log p(x), `base_log_prob` = log p(z) and
  `log_det` = log|det ∂z/∂x| (log_prob = base_log_prob + log_det)."""
  z, log_det = flow_fn(params, x)
  base = jnp.sum(standard_normal_log_prob(z).reshape(z.shape[0], -1), axis=-1)
  value = base + log_det
  return {"log_prob": value, "nll": -value, "base_log_prob": base, "log_det": log_det}


def nll_loss(flow_fn: FlowFn, params, x):
  """Maximum likelihood: (mean NLL, batch means of `nll_terms` and `nll_bpd`)."""
  terms = {k: jnp.mean(v) for k, v in nll_terms(flow_fn, params, x).items()}
  terms["nll_bpd"] = terms["nll"] / (math.prod(x.shape[1:]) * math.log(2.0))
  return terms["nll"], terms


def base_samples(keys, event_shape, temperature: float = 1.0, dtype=jnp.float32):
  """z_i ~ N(0, T² I) from keys[i] (Glow's temperature T; 1 samples the model)."""
  return temperature * jax.vmap(lambda k: jax.random.normal(k, tuple(event_shape), dtype))(keys)
