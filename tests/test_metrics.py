"""Metrics against float64 reference implementations of their published formulas."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from scipy.special import softmax

from gen_jax import metrics
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import protocol
from gen_jax.nets.inception import NUM_FEATURES, NUM_LOGITS, FIDInceptionV3


def random_features(n, d, seed, shift=0.0, scale=1.0):
  rng = np.random.default_rng(seed)
  mixing = rng.normal(size=(d, d)) / np.sqrt(d)
  return (rng.normal(size=(n, d)) @ mixing) * scale + shift


def reference_fid(x, y):
  """Heusel et al. 2017 as in the reference TTUR code: scipy sqrtm in float64."""
  mu1, mu2 = x.mean(0), y.mean(0)
  s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2).real
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def reference_mmd2(x, y):
  d = x.shape[1]
  k = lambda a, b: (a @ b.T / d + 1) ** 3
  m, n = len(x), len(y)
  kxx, kyy = k(x, x), k(y, y)
  return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
          - 2 * k(x, y).mean())


def reference_inception_score(logits, splits):
  scores = []
  for part in np.split(logits[: len(logits) // splits * splits], splits):
    p = softmax(part, axis=1)
    marginal = p.mean(0, keepdims=True)
    scores.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(marginal)), axis=1))))
  return np.mean(scores), np.std(scores)


def reference_precision_recall(real, fake, k=3):
  def radii(a):
    d = ((a[:, None] - a[None]) ** 2).sum(-1)
    return np.sort(d, axis=1)[:, k]
  def inside(manifold, r, q):
    d = ((q[:, None] - manifold[None]) ** 2).sum(-1)
    return np.mean(np.any(d <= r[None], axis=1))
  return inside(real, radii(real), fake), inside(fake, radii(fake), real)


class MetricsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_fid_matches_the_scipy_reference(self):
    x, y = random_features(400, 12, 0), random_features(300, 12, 1, shift=0.3, scale=1.4)
    with jax.enable_x64(True):
      got = self.variant(metrics.fid_from_features)(jnp.asarray(x), jnp.asarray(y))
    assert float(got) == pytest.approx(reference_fid(x, y), rel=1e-8, abs=1e-9)

  def test_frechet_distance_of_a_set_with_itself_is_zero(self):
    x = random_features(500, 16, 2)
    with jax.enable_x64(True):
      assert abs(float(metrics.fid_from_features(jnp.asarray(x), jnp.asarray(x)))) < 1e-8
    assert abs(float(metrics.fid_from_features(jnp.asarray(x, jnp.float32), jnp.asarray(x, jnp.float32)))) < 1e-3

  def test_frechet_distance_closed_form_for_diagonal_gaussians(self):
    mu1, mu2 = jnp.array([0.0, 1.0]), jnp.array([1.0, 3.0])
    s1, s2 = jnp.diag(jnp.array([1.0, 4.0])), jnp.diag(jnp.array([9.0, 1.0]))
    # |Δμ|² + Σ (√a − √b)² = 5 + (1 − 3)² + (2 − 1)² = 10
    assert float(metrics.frechet_distance(mu1, s1, mu2, s2)) == pytest.approx(10.0, rel=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_mmd2_matches_the_reference(self):
    x, y = random_features(120, 6, 3), random_features(90, 6, 4, shift=0.2)
    with jax.enable_x64(True):
      got = self.variant(metrics.mmd2_unbiased)(jnp.asarray(x), jnp.asarray(y))
    assert float(got) == pytest.approx(reference_mmd2(x, y), rel=1e-10)

  def test_kid_with_one_full_subset_is_the_mmd_of_the_sets(self):
    x, y = random_features(150, 6, 5), random_features(150, 6, 6, shift=0.5)
    with jax.enable_x64(True):
      mean, std = metrics.kid_from_features(jnp.asarray(x), jnp.asarray(y), num_subsets=1,
                                            subset_size=10_000)
    assert float(mean) == pytest.approx(reference_mmd2(x, y), rel=1e-10)
    assert float(std) == 0.0

  def test_kid_of_two_samples_of_one_distribution_is_zero_within_its_error(self):
    rng = np.random.default_rng(9)
    mixing = rng.normal(size=(8, 8))
    a, b = rng.normal(size=(3000, 8)) @ mixing, rng.normal(size=(3000, 8)) @ mixing
    mean, std = metrics.kid_from_features(jnp.asarray(a), jnp.asarray(b), num_subsets=50,
                                          subset_size=500, key=jax.random.key(0))
    assert abs(float(mean)) < 2 * float(std), (mean, std)
    shifted, _ = metrics.kid_from_features(jnp.asarray(a), jnp.asarray(b + 1.0), num_subsets=50,
                                           subset_size=500, key=jax.random.key(0))
    assert float(shifted) > 10 * float(std)

  @chex.variants(with_jit=True, without_jit=True)
  def test_inception_score_matches_the_reference(self):
    logits = np.random.default_rng(10).normal(size=(1000, 10)) * 3
    mean, std = self.variant(metrics.inception_score_from_logits, static_argnums=1)(jnp.asarray(logits), 10)
    want_mean, want_std = reference_inception_score(logits, 10)
    assert float(mean) == pytest.approx(want_mean, rel=1e-4)
    assert float(std) == pytest.approx(want_std, rel=1e-3, abs=1e-5)

  def test_inception_score_of_uniform_logits_is_one_and_of_confident_balanced_is_k(self):
    mean, _ = metrics.inception_score_from_logits(jnp.zeros((500, 7)), 5)
    assert float(mean) == pytest.approx(1.0, abs=1e-6)
    confident = 50.0 * jax.nn.one_hot(jnp.arange(1000) % 10, 10)
    mean, _ = metrics.inception_score_from_logits(confident, 10)
    assert float(mean) == pytest.approx(10.0, rel=1e-4)

  def test_precision_recall_match_the_brute_force_reference(self):
    real, fake = random_features(200, 5, 11), random_features(150, 5, 12, shift=0.4)
    got = metrics.precision_recall(jnp.asarray(real), jnp.asarray(fake))
    want = reference_precision_recall(real, fake)
    np.testing.assert_allclose([float(g) for g in got], want, atol=1e-6)
    same = metrics.precision_recall(jnp.asarray(real), jnp.asarray(real))
    np.testing.assert_allclose([float(v) for v in same], [1.0, 1.0])
    far = metrics.precision_recall(jnp.asarray(real), jnp.asarray(real + 100.0))
    np.testing.assert_allclose([float(v) for v in far], [0.0, 0.0])


def test_bits_per_dim_conversions():
  assert float(metrics.nats_to_bpd(784 * np.log(2), 784)) == pytest.approx(1.0)
  assert float(metrics.bpd_to_nats(metrics.nats_to_bpd(123.4, 10), 10)) == pytest.approx(123.4)
  # The uniform density on [0, 1]^D has NLL 0; as 8-bit data that is exactly 8 bits per dimension.
  assert float(metrics.continuous_nll_to_bpd(0.0, 3072)) == pytest.approx(8.0)
  # On [-1, 1] the density is 2^-D: NLL = D log 2, still 8 bits per dimension.
  assert float(metrics.continuous_nll_to_bpd(3072 * np.log(2), 3072, interval_width=2.0)) == pytest.approx(8.0)


def test_inception_has_the_fid_layout_and_its_converter_round_trips():
  model = FIDInceptionV3(resize=False)
  # Shapes by abstract evaluation (no compilation of the full network).
  abstract = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 75, 75, 3)))
  features, logits = jax.eval_shape(model.apply, abstract, jnp.zeros((2, 75, 75, 3)))
  assert features.shape == (2, NUM_FEATURES) and logits.shape == (2, NUM_LOGITS)
  names = set(abstract["params"])
  assert {"Conv2d_1a_3x3", "Mixed_5b", "Mixed_6e", "Mixed_7c", "fc"} <= names
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda a: rng.normal(size=a.shape).astype(np.float32), abstract)
  # Build the torchvision-named state dict this layout implies, and convert it back.
  from flax import traverse_util
  torch_state = {}
  for path, value in traverse_util.flatten_dict(variables).items():
    collection, *module, leaf = path
    value = np.asarray(value)
    if module == ["fc"]:
      torch_state[f"fc.{'weight' if leaf == 'kernel' else 'bias'}"] = value.T if leaf == "kernel" else value
      continue
    *prefix, layer = module
    torch_leaf = {("conv", "kernel"): "weight", ("bn", "scale"): "weight", ("bn", "bias"): "bias",
                  ("bn", "mean"): "running_mean", ("bn", "var"): "running_var"}[(layer, leaf)]
    if leaf == "kernel":
      value = value.transpose(3, 2, 0, 1)
    torch_state[".".join(prefix + [layer, torch_leaf])] = value
  torch_state["Conv2d_1a_3x3.bn.num_batches_tracked"] = np.zeros(())
  back = feature_lib.inception_variables_from_torch(torch_state)
  chex.assert_trees_all_equal(back, variables)


def test_missing_inception_weights_say_where_to_get_them(tmp_path, monkeypatch):
  monkeypatch.delenv(feature_lib.INCEPTION_WEIGHTS_ENV, raising=False)
  with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
    feature_lib.feature_net("inception_v3", weights=str(tmp_path / "nope.npz"))


def test_unknown_feature_net_is_named():
  with pytest.raises(ValueError, match="mnist5k_cls"):
    feature_lib.feature_net("mnist_cls")


@pytest.mark.parametrize("dataset,min_accuracy", [("mnist5k", 0.95), ("digits", 0.95)])
def test_shipped_classifier_weights_classify_the_test_split(dataset, min_accuracy, data_dir):
  import ml_collections
  from gen_jax.data import load_dataset
  data = load_dataset(ml_collections.ConfigDict({"name": dataset, "data_dir": data_dir}))
  net = feature_lib.feature_net(f"{dataset}_cls")
  images = data.test.arrays["x"].astype(np.float32) / 255.0
  features, logits = protocol.extract_features(net, images)
  accuracy = np.mean(np.argmax(logits, 1) == data.test.arrays["label"])
  assert accuracy >= min_accuracy, accuracy
  # Features are on the fixed scale: unit RMS on the training split, so order 1 on test.
  assert 0.5 < np.sqrt(np.mean(features ** 2)) < 2.0


def test_drawn_samples_do_not_depend_on_the_batch_size():
  sample_fn = lambda keys: jax.vmap(lambda k: jax.random.uniform(k, (4, 4, 1)))(keys)
  a = protocol.draw_samples(sample_fn, jax.random.key(3), 37, batch_size=8)
  b = protocol.draw_samples(sample_fn, jax.random.key(3), 37, batch_size=25)
  assert a.shape == (37, 4, 4, 1)
  np.testing.assert_array_equal(a, b)
