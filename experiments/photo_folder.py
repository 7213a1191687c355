r"""Writes the colour photographs that scikit-learn (and, when installed, scikit-image) ship as
a folder of pictures: the real folder of README's paintings section and of the tests, since no
paintings dataset can be downloaded on the machines this project runs on.

  python -m experiments.photo_folder --output=/tmp/photos

Each library's photographs go in a sub-folder of their own (`scikit-learn/`, `scikit-image/`),
which `experiments.paintings` reads as two styles.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from experiments import launch

# scikit-image's colour photographs that ship inside the package (no download).
SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def photographs() -> dict[str, dict]:
  """{sub-folder: {name: (H, W, 3) uint8}}: scikit-learn's two photographs, and scikit-image's
  when it is installed (`pip install -e ".[photos]"`)."""
  from sklearn.datasets import load_sample_images
  sample = load_sample_images()
  found = {"scikit-learn": {os.path.splitext(os.path.basename(name))[0]: image
                            for name, image in zip(sample.filenames, sample.images)}}
  try:
    from skimage import data
  except ImportError:
    print("scikit-image is not installed: writing scikit-learn's photographs only", file=sys.stderr)
    return found
  found["scikit-image"] = {name: getattr(data, name)() for name in SKIMAGE_PHOTOS}
  return found


def write_photo_folder(output: str, libraries=None) -> list[str]:
  """Writes each photograph as PNG under output/<library>/; returns the paths."""
  from PIL import Image
  paths = []
  for library, images in photographs().items():
    if libraries and library not in libraries:
      continue
    os.makedirs(os.path.join(output, library), exist_ok=True)
    for name, image in images.items():
      path = os.path.join(output, library, f"{name}.png")
      Image.fromarray(image).save(path)
      paths.append(path)
  return paths


def main(argv):
  del argv
  paths = write_photo_folder(flags.FLAGS.output)
  print(f"wrote {len(paths)} photographs under {flags.FLAGS.output}", file=sys.stderr)


if __name__ == "__main__":
  flags.DEFINE_string("output", None, "The folder to write.", required=True)
  launch.run_tool(main)
