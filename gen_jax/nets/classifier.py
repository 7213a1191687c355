"""A small convolutional classifier whose penultimate layer is the feature space of the
bundled-data metrics (fid_mnist5k_cls, ...)."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn


class SmallConvClassifier(nn.Module):
  """Two stride-2 3x3 convolutions, a Dense feature layer; returns (features, logits)."""
  num_classes: int = 10
  channels: Sequence[int] = (16, 32)
  feature_dim: int = 64

  @nn.compact
  def __call__(self, images):
    x = 2.0 * images - 1.0
    for width in self.channels:
      x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")(x))
    features = nn.relu(nn.Dense(self.feature_dim)(x.reshape(x.shape[0], -1)))
    return features, nn.Dense(self.num_classes)(features)
