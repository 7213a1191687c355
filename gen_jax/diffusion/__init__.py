"""The diffusion family (math only): discrete Gaussian diffusion (schedules, q_sample,
q_posterior, targets, DDPM/DDIM steps), losses with named terms, compiled samplers,
score SDEs with PC sampling and probability-flow likelihoods, learned-SNR variational
diffusion, and analytic Gaussian mixtures for testing."""

from gen_jax.diffusion import analytic, gaussian, losses, samplers, sde, vdm
from gen_jax.diffusion.gaussian import (cosine_betas, ddim_step, ddpm_step, linear_betas, make_schedule,
                                        predict_x0_from_eps, q_posterior, q_sample)
from gen_jax.diffusion.samplers import sample_ddim, sample_ddpm

__all__ = ["analytic", "gaussian", "losses", "samplers", "sde", "vdm", "cosine_betas", "ddim_step",
           "ddpm_step", "linear_betas", "make_schedule", "predict_x0_from_eps", "q_posterior",
           "q_sample", "sample_ddim", "sample_ddpm"]
