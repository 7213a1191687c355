"""The autoencoder family: AE, DAE, SAE, VAE, IWAE and the two-level hierarchical VAE (math only)."""

from gen_jax.autoencoders import ae, hvae, vae
from gen_jax.autoencoders.vae import elbo, elbo_terms, iwae_bound

__all__ = ["ae", "hvae", "vae", "elbo", "elbo_terms", "iwae_bound"]
