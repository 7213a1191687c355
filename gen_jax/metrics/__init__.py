"""Evaluation: sample metrics on features (FID, KID, IS, precision/recall), feature networks
and likelihood units."""

from gen_jax.metrics.likelihood import bpd_to_nats, continuous_nll_to_bpd, nats_to_bpd
from gen_jax.metrics.sample_metrics import (feature_statistics, fid_from_features, frechet_distance,
                                            inception_score_from_logits, kid_from_features,
                                            mmd2_unbiased, precision_recall)

__all__ = ["bpd_to_nats", "continuous_nll_to_bpd", "nats_to_bpd", "feature_statistics",
           "fid_from_features", "frechet_distance", "inception_score_from_logits",
           "kid_from_features", "mmd2_unbiased", "precision_recall"]
