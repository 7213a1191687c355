"""Energy-based models p(x) = exp(-E(x)) / Z: Langevin and MALA samplers, contrastive
divergence and score-matching losses, a sharded replay buffer, and log Z by quadrature (2-D)
or annealed importance sampling (images)."""

from gen_jax.ebm.losses import (contrastive_divergence_loss, denoising_score_matching_loss,
                                sliced_score_matching_loss)
from gen_jax.ebm.partition import ais_log_partition, grid_log_partition
from gen_jax.ebm.samplers import (annealed_langevin_sample, langevin_sample,
                                  langevin_stationary_covariance, mala_sample, short_run_sample)

__all__ = ["contrastive_divergence_loss", "denoising_score_matching_loss",
           "sliced_score_matching_loss", "ais_log_partition", "grid_log_partition",
           "annealed_langevin_sample", "langevin_sample", "langevin_stationary_covariance",
           "mala_sample", "short_run_sample"]
