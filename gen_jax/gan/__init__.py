"""Generative adversarial networks: the players' costs, the critic regularisers (WGAN-GP, R1,
weight clipping) and spectral normalisation (math only; networks in gen_jax.nets)."""

from gen_jax.gan.losses import (clip_weights, discriminator_loss, generator_loss, gradient_penalty,
                                r1_penalty)
from gen_jax.gan.spectral import power_iteration, spectral_normalize

__all__ = ["clip_weights", "discriminator_loss", "generator_loss", "gradient_penalty", "r1_penalty",
           "power_iteration", "spectral_normalize"]
