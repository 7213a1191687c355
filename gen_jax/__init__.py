"""gen_jax: deep generative models as pure JAX functions, Flax networks and thin launchers."""

__version__ = "0.1.0"
