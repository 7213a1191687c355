"""A folder of pictures (paintings, scrolls, photographs) made into square 8-bit RGB examples.

`prepare_folder` walks the folder (sub-folders included; the first level of sub-folders names
the styles, used as labels), decodes every file it can and cuts each picture into examples:

- layout "crop": the shorter side scaled to `image_size`, one centre square per picture;
  pictures longer than `SCROLL_ASPECT` times their width (hand scrolls, hanging scrolls) are
  cut into consecutive squares along their length instead, so a scroll is not reduced to its
  middle;
- layout "tiles": non-overlapping `tile_size`-pixel squares of the picture at its own
  resolution (centred, the margins dropped), each resized to `image_size`.

Every picture is read the same way whatever its file holds: EXIF orientation applied; palette,
grayscale, 16-bit, CMYK, and alpha (composited over white) made RGB; a picture larger than
`max_pixels` skipped before it is decoded (a decompression bomb). A file that is not an image or
cannot be decoded is skipped with one warning naming it and why, and counted; with `strict` it is
an error instead. The held-out split is a seeded permutation of the examples in a fixed order
(sorted relative paths, then tiles in reading order), so the same folder and seed give the same
split.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys
import warnings
from typing import Callable, Optional

import numpy as np

# A picture more than this many times longer than wide (or wider than tall) is a scroll.
SCROLL_ASPECT = 2.0
# Pixels in a picture above which it is skipped undecoded (PIL's own default limit).
DEFAULT_MAX_PIXELS = 89_478_485
# Fewest examples a prepared folder may hold: one held out, and enough left to train on.
MIN_EXAMPLES = 10
LAYOUTS = ("crop", "tiles")
WHITE = (255, 255, 255)


class FolderError(ValueError):
  """A folder that cannot be prepared (missing, empty, too small, a bad file under --strict)."""


@dataclasses.dataclass(frozen=True)
class Skipped:
  path: str
  reason: str


@dataclasses.dataclass
class PreparedFolder:
  """Examples as uint8 (N, S, S, 3) with labels (the style index), split into train and test."""
  train_x: np.ndarray
  train_label: np.ndarray
  test_x: np.ndarray
  test_label: np.ndarray
  styles: list[str]            # label i's sub-folder ("" for pictures at the top level)
  train_source: list[str]      # the relative path (and tile) each training example came from
  test_source: list[str]
  num_pictures: int
  skipped: list[Skipped]

  def arrays(self) -> dict:
    return {"train_x": self.train_x, "train_label": self.train_label,
            "test_x": self.test_x, "test_label": self.test_label,
            "train_source": np.asarray(self.train_source), "test_source": np.asarray(self.test_source),
            "styles": np.asarray(self.styles)}


def rgb(image):
  """Any PIL image as 8-bit RGB: EXIF orientation applied, alpha composited over white."""
  from PIL import Image, ImageOps
  image = ImageOps.exif_transpose(image)
  if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
    values = np.asarray(image, np.float64)  # 16-bit or float grayscale: its range onto 0..255
    top = float(values.max()) if values.size else 0.0
    if image.mode == "F":
      scale = 255.0 / max(top, 1e-12)
    else:
      scale = 255.0 / 65535.0 if top > 255 else 1.0
    image = Image.fromarray(np.clip(np.round(values * scale), 0, 255).astype(np.uint8), "L")
  if image.mode == "P":
    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
  if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, WHITE + (255,))
    image = Image.alpha_composite(background, rgba)
  return image.convert("RGB")


def read_picture(path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
  """Decodes one file to (H, W, 3) uint8 RGB; raises ValueError saying why it cannot."""
  from PIL import Image, UnidentifiedImageError
  limit = Image.MAX_IMAGE_PIXELS
  Image.MAX_IMAGE_PIXELS = None  # the size is checked below, from the header, before decoding
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      with Image.open(path) as image:
        width, height = image.size
        if width * height > max_pixels:
          raise ValueError(f"{width}x{height} = {width * height:,} pixels, over the limit of "
                           f"{max_pixels:,} (a decompression bomb?); raise --max_pixels to read it")
        image.load()
        return np.asarray(rgb(image), np.uint8)
  except UnidentifiedImageError:
    raise ValueError("not an image PIL can read") from None
  except (OSError, SyntaxError, EOFError, Image.DecompressionBombError) as err:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    raise ValueError(f"cannot be decoded ({text})") from None
  finally:
    Image.MAX_IMAGE_PIXELS = limit


def squares(picture: np.ndarray, layout: str, image_size: int, tile_size: int) -> list[np.ndarray]:
  """The examples one picture gives (see the module docstring), each (S, S, 3) uint8."""
  from PIL import Image
  height, width = picture.shape[:2]
  if layout == "tiles":
    rows, cols = height // tile_size, width // tile_size
    top, left = (height - rows * tile_size) // 2, (width - cols * tile_size) // 2
    boxes = [(left + c * tile_size, top + r * tile_size, tile_size)
             for r in range(rows) for c in range(cols)]
    source = Image.fromarray(picture)
  else:
    scale = image_size / min(height, width)
    size = (max(image_size, round(width * scale)), max(image_size, round(height * scale)))
    source = Image.fromarray(picture).resize(size, Image.Resampling.LANCZOS)
    long_side = max(size)
    if long_side >= SCROLL_ASPECT * image_size:  # a scroll: consecutive squares along it
      count = long_side // image_size
      offset = (long_side - count * image_size) // 2
      along_width = size[0] >= size[1]
      boxes = [((offset + i * image_size, 0) if along_width else (0, offset + i * image_size))
               + (image_size,) for i in range(count)]
    else:
      boxes = [((size[0] - image_size) // 2, (size[1] - image_size) // 2, image_size)]
  out = []
  for left, top, side in boxes:
    square = source.crop((left, top, left + side, top + side))
    if side != image_size:
      square = square.resize((image_size, image_size), Image.Resampling.LANCZOS)
    out.append(np.asarray(square, np.uint8))
  return out


def list_files(folder) -> list[pathlib.Path]:
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FolderError(f"--images={str(folder)!r} is not a folder: point it at a folder of pictures")
  files = sorted(p for p in folder.rglob("*")
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
  if not files:
    raise FolderError(f"--images={str(folder)!r} holds no files: point it at a folder of pictures")
  return files


def style_of(relative: pathlib.Path) -> str:
  """A picture's style: its first-level sub-folder ("" for a picture at the top level)."""
  return relative.parts[0] if len(relative.parts) > 1 else ""


def warn(message: str):
  print(f"warning: {message}", file=sys.stderr)


def prepare_folder(folder, image_size: int, layout: str = "crop", tile_size: int = 0,
                   test_fraction: float = 0.1, seed: int = 0, strict: bool = False,
                   max_pixels: int = DEFAULT_MAX_PIXELS,
                   progress: Optional[Callable] = None) -> PreparedFolder:
  """Reads `folder` into a PreparedFolder (the module docstring says how)."""
  if layout not in LAYOUTS:
    raise FolderError(f"unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
  if layout == "tiles" and tile_size < 1:
    raise FolderError("layout 'tiles' needs --tile_size > 0 (the side of a tile in the picture's pixels)")
  if not 0.0 < test_fraction < 1.0:
    raise FolderError(f"test_fraction={test_fraction} must lie strictly between 0 and 1")
  root = pathlib.Path(folder)
  files = list_files(root)
  styles = sorted({style_of(p.relative_to(root)) for p in files})
  examples, labels, sources, skipped = [], [], [], []
  num_pictures = 0
  for path in (progress(files) if progress else files):
    relative = str(path.relative_to(root))
    try:
      picture = read_picture(path, max_pixels)
    except ValueError as err:
      if strict:
        raise FolderError(f"{relative}: {err} (--strict; remove the file or drop --strict to skip it)") from None
      warn(f"skipped {relative}: {err}")
      skipped.append(Skipped(relative, str(err)))
      continue
    style = styles.index(style_of(path.relative_to(root)))
    cut = squares(picture, layout, image_size, tile_size)
    if not cut:
      reason = f"{picture.shape[1]}x{picture.shape[0]} pixels holds no {tile_size}-pixel tile"
      if strict:
        raise FolderError(f"{relative}: {reason} (--strict)")
      warn(f"skipped {relative}: {reason}")
      skipped.append(Skipped(relative, reason))
      continue
    num_pictures += 1
    examples += cut
    labels += [style] * len(cut)
    sources += [relative if len(cut) == 1 else f"{relative}#{i}" for i in range(len(cut))]
  if skipped:
    warn(f"{len(skipped)} of {len(files)} files skipped (listed above); --strict makes a bad file an error")
  count = len(examples)
  if count < MIN_EXAMPLES:
    raise FolderError(
        f"{str(root)!r} gives {count} examples from {num_pictures} readable pictures "
        f"({len(skipped)} files skipped): at least {MIN_EXAMPLES} are needed to hold some out; "
        "add pictures, or cut more from each with --layout=tiles --tile_size=N")
  num_test = max(1, round(count * test_fraction))
  order = np.random.default_rng(seed).permutation(count)
  test_ids, train_ids = np.sort(order[:num_test]), np.sort(order[num_test:])
  x = np.stack(examples)
  y = np.asarray(labels, np.int64)
  return PreparedFolder(x[train_ids], y[train_ids], x[test_ids], y[test_ids], styles,
                        [sources[i] for i in train_ids], [sources[i] for i in test_ids],
                        num_pictures, skipped)


def save_prepared(prepared: PreparedFolder, path: str):
  """Writes the arrays as one .npz, atomically (a temporary file renamed into place)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  temporary = f"{path}.tmp-{os.getpid()}.npz"
  np.savez(temporary, **prepared.arrays())
  os.replace(temporary, path)


def load_prepared_arrays(path: str) -> dict:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"no prepared arrays at {path!r}: run experiments.paintings to prepare "
                            "a folder, or set data.path to its .npz")
  with np.load(path) as f:
    return {k: f[k] for k in f.files}
