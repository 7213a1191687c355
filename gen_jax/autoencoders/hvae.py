"""The two-level Markov hierarchical VAE (the seeds' HVAE).

Generative model p(z2) p(z1 | z2) p(x | z1), inference model q(z1 | x) q(z2 | z1):

  ELBO = E_q[log p(x|z1) - log q(z1|x) + log p(z1|z2) - log q(z2|z1) + log p(z2)].

The terms follow the `apply_fn` contract of `gen_jax.autoencoders.vae`, with
z = (z1, z2): log p(z) = log p(z1|z2) + log p(z2) and log q(z|x) = log q(z1|x) + log q(z2|z1).
"""

from __future__ import annotations

import jax

from gen_jax import distributions
from gen_jax.autoencoders.vae import reparameterize, sum_except_batch


def markov_hvae_terms(x, key, encode1, encode2, decode2, decode1, obs_model):
  """Single-sample terms of the two-level Markov HVAE.

  `encode1(x)`, `encode2(z1)` and `decode2(z2)` return Gaussian (mean, log_var);
  `decode1(z1)` returns the observation model's parameters for x.
  """
  key1, key2 = jax.random.split(key)
  mean1, log_var1 = encode1(x)
  z1 = reparameterize(key1, mean1, log_var1)
  mean2, log_var2 = encode2(z1)
  z2 = reparameterize(key2, mean2, log_var2)
  prior_mean1, prior_log_var1 = decode2(z2)
  log_q = (sum_except_batch(distributions.normal_log_prob(z1, mean1, log_var1))
           + sum_except_batch(distributions.normal_log_prob(z2, mean2, log_var2)))
  log_p_z = (sum_except_batch(distributions.normal_log_prob(z1, prior_mean1, prior_log_var1))
             + sum_except_batch(distributions.standard_normal_log_prob(z2)))
  log_px_z = sum_except_batch(obs_model.log_prob(x, decode1(z1)))
  return {"log_px_z": log_px_z, "log_pz": log_p_z, "log_qz_x": log_q}
