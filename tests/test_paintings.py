"""The picture-folder application (`experiments.paintings`): real folders with every kind of
trouble, the same split and first batch for the same folder and seed, and the gallery opened in
headless Chromium."""

from __future__ import annotations

import html.parser
import io
import json
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from experiments import faults, paintings_gallery, photo_folder
from gen_jax.data import folder as folder_lib
from gen_jax.data import load_dataset
from gen_jax.data.pipeline import BatchSampler
from gen_jax.metrics import memorisation



def picture(size=(24, 16), seed=0, mode="RGB"):
  rng = np.random.default_rng(seed)
  return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert(mode)


def snapshot(directory) -> dict:
  """{relative path: bytes} of every file under `directory`."""
  root = pathlib.Path(directory)
  return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- reading pictures


def test_every_colour_mode_becomes_rgb(tmp_path):
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., 0] = 200
  rgba[:4, :, 3] = 255  # top half opaque red, bottom half transparent -> white
  Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
  palette = Image.new("P", (8, 8), 1)
  palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
  palette.save(tmp_path / "palette.png")
  Image.new("L", (8, 8), 77).save(tmp_path / "gray.png")
  Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=100)
  Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "sixteen.png")
  Image.new("LA", (8, 8), (50, 0)).save(tmp_path / "gray_alpha.png")
  read = {p.name: folder_lib.read_picture(p) for p in tmp_path.iterdir()}
  for name, array in read.items():
    assert array.shape == (8, 8, 3) and array.dtype == np.uint8, name
  np.testing.assert_array_equal(read["rgba.png"][0, 0], [200, 0, 0])
  np.testing.assert_array_equal(read["rgba.png"][7, 0], [255, 255, 255])
  np.testing.assert_array_equal(read["palette.png"][3, 3], [10, 20, 30])
  np.testing.assert_array_equal(read["gray.png"][0, 0], [77, 77, 77])
  assert read["cmyk.jpg"][0, 0, 0] > 240 and read["cmyk.jpg"][0, 0, 1:].max() < 15  # red
  np.testing.assert_array_equal(read["sixteen.png"][0, 0], [255, 255, 255])
  np.testing.assert_array_equal(read["gray_alpha.png"][0, 0], [255, 255, 255])  # transparent


def test_exif_orientation_is_applied(tmp_path):
  array = np.zeros((10, 20, 3), np.uint8)  # 20 wide, 10 tall; a marker at the top-left corner
  array[0, 0] = 255
  image = Image.fromarray(array)
  exif = image.getexif()
  exif[0x0112] = 6  # the camera was turned: display rotated 90° clockwise
  image.save(tmp_path / "turned.jpg", exif=exif, quality=100)
  read = folder_lib.read_picture(tmp_path / "turned.jpg")
  assert read.shape == (20, 10, 3)
  assert read[0, -1].min() > 200  # the top-left marker is now top-right


def test_a_picture_over_max_pixels_is_skipped_undecoded(tmp_path, capsys):
  for i in range(12):
    picture(seed=i).save(tmp_path / f"p{i}.png")
  picture(size=(400, 300)).save(tmp_path / "huge.png")
  prepared = folder_lib.prepare_folder(tmp_path, 8, max_pixels=50_000)
  assert [s.path for s in prepared.skipped] == ["huge.png"]
  assert "120,000 pixels" in prepared.skipped[0].reason
  assert "skipped huge.png" in capsys.readouterr().err
  with pytest.raises(folder_lib.FolderError, match="huge.png.*--strict"):
    folder_lib.prepare_folder(tmp_path, 8, max_pixels=50_000, strict=True)


def test_corrupt_and_non_image_files_are_skipped_with_a_warning_each_or_refused_when_strict(tmp_path, capsys):
  nested = tmp_path / "ink" / "album" / "leaf"
  nested.mkdir(parents=True)
  for i in range(6):
    picture(seed=i).save(tmp_path / "ink" / f"a{i}.png")
    picture(seed=10 + i).save(nested / f"b{i}.jpg")
  (tmp_path / "colour").mkdir()
  for i in range(3):
    picture(seed=20 + i).save(tmp_path / "colour" / f"c{i}.png")
  buffer = io.BytesIO()
  picture().save(buffer, "PNG")
  (tmp_path / "ink" / "truncated.png").write_bytes(buffer.getvalue()[:60])
  (tmp_path / "notes.txt").write_text("not a picture")
  (tmp_path / ".hidden.png").write_bytes(b"ignored: hidden files are not read")
  prepared = folder_lib.prepare_folder(tmp_path, 8, test_fraction=0.2)
  err = capsys.readouterr().err
  assert sorted(s.path for s in prepared.skipped) == ["ink/truncated.png", "notes.txt"]
  assert err.count("warning: skipped ") == 2 and "2 of 17 files skipped" in err
  assert prepared.num_pictures == 15 and prepared.styles == ["", "colour", "ink"]
  assert len(prepared.train_x) + len(prepared.test_x) == 15 and len(prepared.test_x) == 3
  sources = prepared.train_source + prepared.test_source
  assert "ink/album/leaf/b0.jpg" in sources  # nested sub-folders are read
  labels = dict(zip(sources, np.concatenate([prepared.train_label, prepared.test_label])))
  assert labels["ink/album/leaf/b0.jpg"] == 2 and labels["colour/c0.png"] == 1
  with pytest.raises(folder_lib.FolderError, match=r"ink/truncated.png: cannot be decoded .*--strict"):
    folder_lib.prepare_folder(tmp_path, 8, strict=True)


def test_scrolls_become_squares_along_their_length_and_tiles_cover_the_picture():
  scroll = np.random.default_rng(0).integers(0, 256, (40, 170, 3), dtype=np.uint8)  # 4.25:1
  assert len(folder_lib.squares(scroll, "crop", 8, 0)) == 4  # 34 px long at height 8 -> 4 squares
  assert len(folder_lib.squares(scroll[:, :60], "crop", 8, 0)) == 1
  tiles = folder_lib.squares(scroll, "tiles", 8, 20)
  assert len(tiles) == 2 * 8 and tiles[0].shape == (8, 8, 3)
  exact = folder_lib.squares(scroll, "tiles", 20, 20)  # tiles at their own size: the pixels
  np.testing.assert_array_equal(exact[0], scroll[:20, 5:25])


def test_a_folder_too_small_for_the_split_is_a_clear_error(tmp_path):
  for i in range(3):
    picture(seed=i).save(tmp_path / f"p{i}.png")
  with pytest.raises(folder_lib.FolderError, match="gives 3 examples.*at least 10.*--tile_size"):
    folder_lib.prepare_folder(tmp_path, 8)
  with pytest.raises(folder_lib.FolderError, match="not a folder"):
    folder_lib.prepare_folder(tmp_path / "missing", 8)


# ---------------------------------------------------------------- the command


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  directory = tmp_path_factory.mktemp("photos")
  photo_folder.write_photo_folder(str(directory), libraries=("scikit-learn",))
  return directory


def launch(workdir, *flags):
  return faults.complete(faults.launcher(workdir, *flags, program="paintings"), timeout=600)


def test_broken_folders_through_the_command_leave_the_workdir_as_it_was(tmp_path, photos):
  workdir = tmp_path / "out"
  workdir.mkdir()
  (workdir / "notes.md").write_text("mine")
  small = tmp_path / "small"
  small.mkdir()
  picture().save(small / "one.png")
  (small / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")

  def refused(flags, expected):
    before = snapshot(workdir)
    code, _, err = launch(workdir, *flags)
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, (flags, err)
    assert expected in lines[0], (flags, err)
    assert snapshot(workdir) == before
    return err

  err = refused((f"--images={small}",), "gives 1 examples from 1 readable pictures (1 files skipped)")
  assert "warning: skipped broken.jpg" in err
  refused((f"--images={small}", "--strict"), "broken.jpg")
  refused((f"--images={tmp_path / 'nowhere'}",), "is not a folder")
  refused((f"--images={photos}", "--models=vae,gan"), "--models=vae,gan: choose from")
  refused((f"--images={photos}", "--image_size=48"), "--image_size=48")
  refused((f"--images={photos}", "--layout=tiles"), "--tile_size")
  assert not (workdir / "data").exists()
  (workdir / "data").mkdir()
  (workdir / "data" / "prepare.json").write_text(json.dumps({"fingerprint": "another folder's",
                                                             "settings": {"images": "/elsewhere"}}))
  refused((f"--images={photos}",), "prepared from another folder")


def test_same_folder_and_seed_give_the_same_split_and_first_batch(tmp_path, photos):
  def prepared(seed):
    return folder_lib.prepare_folder(photos, 16, "tiles", 64, 0.1, seed)

  first, again, other = prepared(0), prepared(0), prepared(1)
  for name in ("train_x", "test_x", "train_label"):
    np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
  assert first.test_source == again.test_source and first.test_source != other.test_source
  batches = []
  for i, p in enumerate((first, again)):
    path = str(tmp_path / f"{i}.npz")
    folder_lib.save_prepared(p, path)
    from ml_collections import ConfigDict
    dataset = load_dataset(ConfigDict({"name": "prepared_folder", "path": path}))
    batches.append(BatchSampler(len(dataset.train), 16, seed=0).global_batch(dataset.train, 0))
  np.testing.assert_array_equal(batches[0]["x"], batches[1]["x"])
  np.testing.assert_array_equal(batches[0]["id"], batches[1]["id"])


def test_nearest_neighbours_against_brute_force():
  rng = np.random.default_rng(0)
  queries, references = rng.normal(size=(300, 7)), rng.normal(size=(50, 7))
  distances, indices = memorisation.nearest_neighbours(queries, references, k=3, chunk=64)
  brute = np.linalg.norm(queries[:, None] - references[None], axis=-1)
  np.testing.assert_array_equal(indices, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(distances, np.sort(brute, axis=1)[:, :3], rtol=1e-4)
  copies = memorisation.memorisation_summary(np.zeros(10), np.linspace(1, 2, 100))
  assert copies["near_copy_fraction"] == 1.0 and copies["nn_median_ratio"] == 0.0


class _Sources(html.parser.HTMLParser):
  def __init__(self):
    super().__init__()
    self.images = []

  def handle_starttag(self, tag, attrs):
    if tag == "img":
      self.images.append(dict(attrs)["src"])


def test_the_command_writes_a_gallery_that_opens_in_headless_chromium(tmp_path, photos):
  workdir = tmp_path / "out"
  code, _, err = launch(workdir, f"--images={photos}", "--layout=tiles", "--tile_size=96",
                        "--image_size=16", "--smoke", "--num_samples=8")
  assert code == 0, err
  results = json.loads((workdir / "results.json").read_text())
  assert [m["model"] for m in results["models"]] == ["vae", "pixelcnn_pp", "ddpm"]
  for report in results["models"]:
    assert np.isfinite(report["bits_per_dim"]) and report["bits_per_dim"] > 0
    assert set(report["memorisation"]) == {"pixels", "features"}
  index = (workdir / "index.html").read_text()
  parser = _Sources()
  parser.feed(index)
  assert len(parser.images) >= 3 * 6
  missing = [src for src in parser.images if not (workdir / src).is_file()]
  assert not missing
  assert paintings_gallery.page_status(str(workdir / "index.html")) == "ok"
  shot = paintings_gallery.screenshot(str(workdir / "index.html"), str(tmp_path / "shot.png"), 800, 600)
  assert Image.open(shot).size == (800, 600)
  # The page's own check sees a missing image and a script error.
  os.remove(workdir / parser.images[0])
  assert paintings_gallery.page_status(str(workdir / "index.html")) == f"missing: {parser.images[0]}"
  (workdir / "broken.html").write_text(index.replace("</body>", "<script>undefinedCall();</script></body>"))
  assert paintings_gallery.page_status(str(workdir / "broken.html")).startswith("script-error: ")
