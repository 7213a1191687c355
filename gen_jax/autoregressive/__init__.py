"""Autoregressive models: AR(p) processes, the chain-rule likelihood of autoregressive networks
(Bernoulli, categorical, PixelCNN++'s discretized logistic mixture) and sampling loops."""

from gen_jax.autoregressive.ar_process import ar_log_prob, fit_ar, forecast, select_order
from gen_jax.autoregressive.discretized_logistic import discretized_logistic_mixture_log_prob

__all__ = ["ar_log_prob", "fit_ar", "forecast", "select_order",
           "discretized_logistic_mixture_log_prob"]
