"""Datasets by name: bundled TFDS builders, the TFDS catalogue, image folders and 2-D densities.

`load_dataset(data_config)` returns a `Dataset` with in-memory (or random-access)
`train` and `test` splits whose examples are {"x", "label"}.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from typing import Any, Callable, Mapping, Optional

import numpy as np

from gen_jax.data import builders, densities, folder

# Data sets at most this large are read into memory once; larger ones stay random-access.
IN_MEMORY_MAX_BYTES = 2 << 30
TRAIN_SPLIT_SEED_OFFSET = 0
TEST_SPLIT_SEED_OFFSET = 1


class ArraySource:
  """Random access over a dict of equal-length arrays."""

  def __init__(self, arrays: Mapping[str, np.ndarray]):
    self.arrays = dict(arrays)
    lengths = {len(v) for v in self.arrays.values()}
    if len(lengths) != 1:
      raise ValueError(f"arrays of unequal lengths {lengths}")
    self._length = lengths.pop()

  def __len__(self):
    return self._length

  def gather(self, ids) -> dict:
    return {k: v[ids] for k, v in self.arrays.items()}


class RecordSource:
  """Random access over a TFDS data source whose records are feature dicts."""

  def __init__(self, source, rename: Mapping[str, str]):
    self.source, self.rename = source, dict(rename)

  def __len__(self):
    return len(self.source)

  def gather(self, ids) -> dict:
    records = self.source.__getitems__([int(i) for i in ids])
    return {new: np.stack([np.asarray(r[old]) for r in records]) for old, new in self.rename.items()}


@dataclasses.dataclass
class Dataset:
  name: str
  kind: str                      # "image" or "points"
  train: Any                     # ArraySource | RecordSource
  test: Any
  element_shape: tuple
  num_classes: int = 0
  log_prob: Optional[Callable] = None  # exact (or quadrature) log-density, for 2-D densities
  info: dict = dataclasses.field(default_factory=dict)


def _read_split(source, rename, in_memory_max_bytes=IN_MEMORY_MAX_BYTES):
  """Reads a whole TFDS split into arrays when it is small, else keeps random access."""
  records = RecordSource(source, rename)
  if len(records) == 0:
    return ArraySource({new: np.zeros((0,)) for new in rename.values()})
  first = records.gather([0])
  nbytes = sum(v.nbytes for v in first.values()) * len(records)
  if nbytes > in_memory_max_bytes:
    return records
  return ArraySource(records.gather(np.arange(len(records))))


def _from_builder(name, builder, kind="image"):
  builder.download_and_prepare()
  sources = builder.as_data_source()
  rename = {"image": "x", "label": "label"}
  train, test = _read_split(sources["train"], rename), _read_split(sources["test"], rename)
  features = builder.info.features
  num_classes = int(np.max(train.gather(np.arange(len(train)))["label"]) + 1) if isinstance(
      train, ArraySource) else 0
  return Dataset(name, kind, train, test, tuple(features["image"].shape), num_classes,
                 info={"builder": builder.name, "version": str(builder.version),
                       "data_dir": builder.data_dir})


def load_mnist5k(config):
  return _from_builder("mnist5k", builders.Mnist5k(data_dir=_data_dir(config),
                                                   file_format="array_record"))


def load_digits(config):
  return _from_builder("digits", builders.Digits(data_dir=_data_dir(config),
                                                 file_format="array_record"))


def load_image_folder(config):
  if not config.get("path"):
    raise ValueError("data.name='image_folder' needs data.path: the folder of images to train on")
  builder = builders.ImageFolder(folder=config.path, image_size=int(config.image_size),
                                 channels=int(config.get("channels", 3)),
                                 test_fraction=float(config.get("test_fraction", 0.05)),
                                 data_dir=_data_dir(config), file_format="array_record")
  if not builder.is_prepared():
    builder.check_images()
  dataset = _from_builder("image_folder", builder)
  dataset.info["folder"] = str(config.path)
  return dataset


def load_prepared_folder(config):
  """A folder made into examples by `experiments.paintings` (`gen_jax.data.folder`): the .npz
  at data.path with its train and test split; labels are the pictures' styles (sub-folders)."""
  if not config.get("path"):
    raise ValueError("data.name='prepared_folder' needs data.path: the .npz that "
                     "experiments.paintings wrote (WORKDIR/data/examples_SIZE.npz)")
  arrays = folder.load_prepared_arrays(str(config.path))
  train = ArraySource({"x": arrays["train_x"], "label": arrays["train_label"]})
  test = ArraySource({"x": arrays["test_x"], "label": arrays["test_label"]})
  styles = [str(s) for s in arrays["styles"]]
  return Dataset("prepared_folder", "image", train, test, tuple(arrays["train_x"].shape[1:]),
                 len(styles) if len(styles) > 1 else 0,
                 info={"path": str(config.path), "styles": styles,
                       # what cached reference features are keyed by (experiments.evaluate)
                       "version": hashlib.sha256(arrays["train_x"].tobytes()
                                                 + arrays["test_x"].tobytes()).hexdigest()[:16]})


def _density_loader(density):
  def load(config):
    seed = int(config.get("seed", 0))
    train = density.sample(np.random.default_rng([seed, TRAIN_SPLIT_SEED_OFFSET]),
                           int(config.get("train_size", 50_000)))
    test = density.sample(np.random.default_rng([seed, TEST_SPLIT_SEED_OFFSET]),
                          int(config.get("test_size", 10_000)))
    as_source = lambda x: ArraySource({"x": x.astype(np.float32),
                                       "label": np.zeros(len(x), np.int64)})
    return Dataset(density.name, "points", as_source(train), as_source(test), (2,),
                   log_prob=density.log_prob, info={"exact_log_prob": density.exact})
  return load


def _data_dir(config):
  return config.get("data_dir") or builders.default_data_dir()


def load_tfds_catalogue(name, config):
  """A standard TFDS dataset, read from a prepared array_record copy in data.data_dir."""
  import tensorflow_datasets as tfds
  data_dir = _data_dir(config)
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as err:  # tfds raises several types for a missing or unknown builder.
    raise ValueError(f"cannot open TFDS dataset {name!r}: {err}") from None
  if not builder.is_prepared():
    raise FileNotFoundError(
        f"TFDS dataset {name!r} is not prepared in {data_dir!r} and this machine cannot download it. "
        f"On a machine with internet run `tfds build {name} --file_format=array_record "
        f"--data_dir=DIR`, copy DIR here and set data.data_dir=DIR (or TFDS_DATA_DIR)")
  sources = tfds.data_source(name, data_dir=data_dir, download=False)
  image_key = "image" if "image" in builder.info.features else next(iter(builder.info.features))
  rename = {image_key: "x"}
  if "label" in builder.info.features:
    rename["label"] = "label"
  splits = list(sources)
  train = _read_split(sources["train"], rename)
  test_name = "test" if "test" in sources else ("validation" if "validation" in sources else splits[-1])
  test = _read_split(sources[test_name], rename)
  if "label" not in rename:
    for split in (train, test):
      if isinstance(split, ArraySource):
        split.arrays["label"] = np.zeros(len(split), np.int64)
  label = builder.info.features["label"] if "label" in builder.info.features else None
  return Dataset(name, "image", train, test, tuple(builder.info.features[image_key].shape),
                 getattr(label, "num_classes", 0) or 0,
                 info={"builder": name, "version": str(builder.version), "data_dir": data_dir,
                       "test_split": test_name})


LOADERS: Mapping[str, Callable] = {
    "mnist5k": load_mnist5k,
    "digits": load_digits,
    "image_folder": load_image_folder,
    "prepared_folder": load_prepared_folder,
    **{name: _density_loader(d) for name, d in densities.DENSITIES.items()},
}


def tfds_catalogue_names() -> list[str]:
  import tensorflow_datasets as tfds
  return list(tfds.list_builders(with_community_datasets=False))


def load_dataset(config) -> Dataset:
  """Loads `config.name` (a bundled name, a 2-D density, "image_folder" or a TFDS catalogue name)."""
  name = config.name
  if name in LOADERS:
    return LOADERS[name](config)
  catalogue = tfds_catalogue_names()
  if name in catalogue:
    return load_tfds_catalogue(name, config)
  known = sorted(LOADERS)
  # The bundled datasets first (they need no preparation), then the catalogue's.
  close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
  close += [c for c in difflib.get_close_matches(name, catalogue, n=3) if c not in close][:3 - len(close)]
  hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
  raise ValueError(f"unknown dataset {name!r} in data.name: use one of {known} or a TFDS "
                   f"catalogue name (e.g. 'mnist', 'cifar10').{hint}")
