"""Gaussian mixtures: the model and EM in scikit-learn's conventions (four covariance types,
reg_covar, k-means++/k-means starts, restarts in parallel, AIC/BIC), statistics summable over
chunks, devices and hosts, and the seed's gradient route to the same likelihood."""

from gen_jax.mixtures.em import fit_gmm, initialize, kmeans, kmeans_plusplus
from gen_jax.mixtures.gmm import (COVARIANCE_TYPES, GaussianMixture, aic, bic, em_step, gmm_log_prob,
                                  m_step, num_parameters, responsibilities, statistics)

__all__ = ["fit_gmm", "initialize", "kmeans", "kmeans_plusplus", "COVARIANCE_TYPES",
           "GaussianMixture", "aic", "bic", "em_step", "gmm_log_prob", "m_step", "num_parameters",
           "responsibilities", "statistics"]
