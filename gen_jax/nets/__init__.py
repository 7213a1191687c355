"""Flax linen networks (modules only: no losses, loops or I/O)."""

from gen_jax.nets.autoregressive import CausalTransformer, PixelCNN, PixelRNN
from gen_jax.nets.autoencoders import Autoencoder, HierarchicalVAE, VAE
from gen_jax.nets.ebm import ConvEnergy, MLPEnergy
from gen_jax.nets.diffusion import LearnedGamma, MLPDenoiser, UNet
from gen_jax.nets.flows import MADE
from gen_jax.nets.layers import MLP, ConvDecoder, ConvEncoder, MLPDecoder

__all__ = ["Autoencoder", "HierarchicalVAE", "VAE", "MLP", "ConvDecoder", "ConvEncoder",
           "MLPDecoder", "LearnedGamma", "MLPDenoiser", "UNet", "MADE", "PixelCNN",
           "CausalTransformer", "PixelRNN", "ConvEnergy", "MLPEnergy"]
