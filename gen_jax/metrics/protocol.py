"""The sample-metric protocol: which reference, how many samples, which features.

- Reference: a split of the dataset after the run's evaluation transforms (e.g. the static
  binarization for Bernoulli models), mapped to [0, 1]. Its features are computed once per
  (dataset, split, feature net, transforms) and cached under `<data_dir>/gen_jax_reference/`.
- Samples: `num_samples` draws, sample i made with fold_in(key, i), so the metric does not
  depend on the batch size or device count.
- Every metric is recorded with the number of samples, the reference split and size, and the
  feature net; metric names carry the feature net (`fid_mnist5k_cls`).
"""

from __future__ import annotations

import hashlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gen_jax.data import evaluation_split
from gen_jax.data.builders import default_data_dir
from gen_jax.keys import split_data_key
from gen_jax.metrics import sample_metrics
from gen_jax.metrics.features import FeatureNet

FEATURE_BATCH_SIZE = 250
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
IS_SPLITS = 10
REFERENCE_DIR = "gen_jax_reference"


def extract_features(net: FeatureNet, images, batch_size: int = FEATURE_BATCH_SIZE):
  """(features, logits) of images in [0, 1], computed in fixed-size padded batches."""
  apply = jax.jit(net.apply)
  features, logits = [], []
  for start in range(0, len(images), batch_size):
    chunk = np.asarray(images[start:start + batch_size], np.float32)
    pad = batch_size - len(chunk)
    padded = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)]) if pad else chunk
    f, l = apply(padded)
    features.append(np.asarray(f)[:len(chunk)])
    logits.append(np.asarray(l)[:len(chunk)])
  return np.concatenate(features), np.concatenate(logits)


def reference_features(dataset, split: str, transforms, net: FeatureNet, seed: int, to_display,
                       data_dir: str = ""):
  """Cached features of a dataset split after the evaluation transforms keyed by
  `split_data_key(seed, split)` (the same draws training and likelihood evaluation use);
  returns (features, logits, provenance)."""
  key = split_data_key(seed, split)
  tag = json.dumps({"dataset": dataset.name, "info": dataset.info.get("version", ""), "split": split,
                    "transforms": list(transforms), "net": net.name,
                    "key": np.asarray(jax.random.key_data(key)).tolist(),
                    "features": "scaled"}, sort_keys=True)
  digest = hashlib.sha256(tag.encode()).hexdigest()[:16]
  cache = os.path.join(data_dir or default_data_dir(), REFERENCE_DIR,
                       f"{dataset.name}_{split}_{net.name}_{digest}.npz")
  if os.path.exists(cache):
    with np.load(cache) as data:
      return data["features"], data["logits"], {"reference_cache": cache}
  images = np.asarray(to_display(evaluation_split(dataset, split, transforms, seed)))
  features, logits = extract_features(net, images)
  os.makedirs(os.path.dirname(cache), exist_ok=True)
  tmp = cache + ".tmp.npz"
  np.savez(tmp, features=features, logits=logits)
  os.replace(tmp, cache)
  return features, logits, {"reference_cache": cache}


def draw_samples(sample_fn, key, num_samples: int, batch_size: int):
  """Samples i = 0..N-1, each from fold_in(key, i); `sample_fn(keys) -> images in [0, 1]`."""
  fn = jax.jit(sample_fn)
  out = []
  for start in tqdm(range(0, num_samples, batch_size), desc="sample", unit="batch", mininterval=2.0):
    ids = np.arange(start, start + batch_size)
    keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.asarray(ids, jnp.uint32))
    out.append(np.asarray(fn(keys))[: max(0, min(batch_size, num_samples - start))])
  return np.concatenate(out)[:num_samples]


def compare_features(real_features, real_logits, fake_features, fake_logits, net_name: str,
                     kid_key=None) -> dict:
  """FID, KID (mean, std), IS (of the fake set), precision and recall, named by the feature net."""
  with jax.enable_x64(True):
    fid = float(sample_metrics.fid_from_features(jnp.asarray(real_features, jnp.float64),
                                                 jnp.asarray(fake_features, jnp.float64)))
    kid, kid_std = sample_metrics.kid_from_features(
        jnp.asarray(real_features, jnp.float64), jnp.asarray(fake_features, jnp.float64),
        KID_SUBSETS, KID_SUBSET_SIZE, key=kid_key)
  splits = min(IS_SPLITS, max(1, len(fake_logits) // 100))
  inception, inception_std = sample_metrics.inception_score_from_logits(jnp.asarray(fake_logits), splits)
  precision, recall = sample_metrics.precision_recall(jnp.asarray(real_features), jnp.asarray(fake_features))
  return {f"fid_{net_name}": fid, f"kid_{net_name}": float(kid), f"kid_{net_name}_std": float(kid_std),
          f"is_{net_name}": float(inception), f"is_{net_name}_std": float(inception_std),
          f"precision_{net_name}": float(precision), f"recall_{net_name}": float(recall)}


def image_quality(images, dataset, transforms, net: FeatureNet, key, to_display, *, data_seed: int,
                  reference_split: str = "train", data_dir: str = "") -> dict:
  """Metrics of generated `images` (in [0, 1]) against the reference split, with provenance."""
  _, kid_key = jax.random.split(key)
  real_f, real_l, provenance = reference_features(dataset, reference_split, transforms, net,
                                                  data_seed, to_display, data_dir)
  fake_f, fake_l = extract_features(net, images)
  metrics = compare_features(real_f, real_l, fake_f, fake_l, net.name, kid_key)
  return {**metrics, "num_samples": int(len(images)), "reference_split": reference_split,
          "reference_size": int(len(real_f)), "feature_net": net.name,
          "comparable_with_inception_fid": net.comparable_with_literature, **provenance}


def sample_quality(sample_fn, dataset, transforms, net: FeatureNet, key, to_display, *,
                   num_samples: int, data_seed: int, reference_split: str = "train",
                   batch_size: int = 250, data_dir: str = "") -> dict:
  """Metrics of `num_samples` model samples against the reference split, with provenance."""
  sample_key, _ = jax.random.split(key)
  images = draw_samples(sample_fn, sample_key, num_samples, batch_size)
  return image_quality(images, dataset, transforms, net, key, to_display, data_seed=data_seed,
                       reference_split=reference_split, data_dir=data_dir)


def real_vs_real(dataset, transforms, net: FeatureNet, key, to_display, *, data_seed: int,
                 split: str = "test", reference_split: str = "train", data_dir: str = "") -> dict:
  """The floor: the metrics of a real split against the reference split (same protocol)."""
  _, kid_key = jax.random.split(key)
  real_f, real_l, _ = reference_features(dataset, reference_split, transforms, net, data_seed,
                                         to_display, data_dir)
  other_f, other_l, _ = reference_features(dataset, split, transforms, net, data_seed, to_display,
                                           data_dir)
  metrics = compare_features(real_f, real_l, other_f, other_l, net.name, kid_key)
  return {**metrics, "num_samples": int(len(other_f)), "samples": f"real {split} split",
          "reference_split": reference_split, "reference_size": int(len(real_f)),
          "feature_net": net.name, "comparable_with_inception_fid": net.comparable_with_literature}


