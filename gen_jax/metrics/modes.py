"""Mode coverage of samples from a mixture of isotropic Gaussians (PacGAN's definitions, Lin et al.
2018): a sample is high quality if it lies within 3 standard deviations of its nearest mode; a
mode is captured by at least one high-quality sample; the reverse KL is that of the histogram
of high-quality samples over the modes against the uniform one, Σ_k q_k log(K q_k)."""

from __future__ import annotations

import numpy as np

HIGH_QUALITY_STDS = 3.0


def mode_coverage(samples, centres, std: float) -> dict:
  """{"modes_captured", "high_quality_fraction", "reverse_kl"} of samples (n, 2)."""
  samples, centres = np.asarray(samples, np.float64), np.asarray(centres, np.float64)
  distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
  nearest = np.argmin(distances, axis=1)
  high_quality = distances[np.arange(len(samples)), nearest] <= HIGH_QUALITY_STDS * std
  counts = np.bincount(nearest[high_quality], minlength=len(centres)).astype(np.float64)
  total = counts.sum()
  if total:
    q = counts / total
    reverse_kl = float(np.sum(q[q > 0] * np.log(len(centres) * q[q > 0])))
  else:
    reverse_kl = float("inf")
  return {"modes_captured": int(np.sum(counts > 0)),
          "high_quality_fraction": float(high_quality.mean()), "reverse_kl": reverse_kl}
