"""VAE trained with the IWAE-k bound (Burda et al. 2016), k = 5, on binarized mnist5k.
Same network as vae.py. Variants as vae.py."""

from experiments.configs import common, vae


def get_config(arg: str = ""):
  c = vae.base_config()
  c.model.kind = "iwae"
  c.model.num_samples = 5
  return common.apply_variants(c, arg, vae.VARIANTS)
