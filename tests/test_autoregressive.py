"""Autoregressive models against truths that cannot be tuned: AR(p) fits against least squares
and the likelihood written out, forecast variances against the MA(∞) weights by simulation, the
discretized logistic against its closed-form tails and a sum of one over the 256 bins, every
network's autoregressive property by exact Jacobian zeros (no blind spot for the PixelCNN),
probabilities of all 2^D binary vectors summing to one, and the transformer's KV-cache (the
RNN's state) samples equal to its uncached samples token for token."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import log_prob as log_prob_tool
from experiments import sample as sample_tool
from experiments.configs import autoregressive_2d, autoregressive_digits
from gen_jax import autoregressive as ar
from gen_jax.autoregressive import discretized_logistic as dl
from gen_jax.autoregressive import likelihood
from gen_jax.nets import MADE, CausalTransformer, PixelCNN, PixelRNN
from gen_jax.nets.autoregressive import NADE, FixedOrderMLP, OrderAgnosticMADE, made_orderings
from gen_jax.tasks import autoregressive
from tests.helpers import FEW_STEPS, with_overrides


def simulate_ar(rng, mu, phi, sigma, n, burn_in=200):
  y = np.zeros(n + burn_in)
  for t in range(len(phi), n + burn_in):
    y[t] = mu + np.dot(phi, y[t - len(phi):t][::-1]) + sigma * rng.normal()
  return y[burn_in:]


# ---------------------------------------------------------------------------- AR(p) processes


def test_fit_ar_is_least_squares_and_log_prob_is_the_written_sum():
  rng = np.random.default_rng(0)
  y = simulate_ar(rng, 0.5, np.array([0.6, -0.3]), 0.7, 300)
  with jax.enable_x64(True):
    fit = ar.fit_ar(jnp.asarray(y), 2)
    rows = np.stack([np.ones(298), y[1:299], y[0:298]], axis=1)
    coef, rss, *_ = np.linalg.lstsq(rows, y[2:], rcond=None)
    np.testing.assert_allclose(fit.mu, coef[0], rtol=1e-9)
    np.testing.assert_allclose(fit.phi, coef[1:], rtol=1e-9)
    np.testing.assert_allclose(fit.sigma2, rss[0] / 298, rtol=1e-9)
    log_prob = ar.ar_log_prob(fit.mu, fit.phi, fit.sigma2, jnp.asarray(y))
    means = rows @ coef
    written = sum(-0.5 * np.log(2 * np.pi * fit.sigma2) - (y[t] - means[t - 2]) ** 2 / (2 * fit.sigma2)
                  for t in range(2, 300))
    np.testing.assert_allclose(log_prob, written, rtol=1e-10)
    # The conditional MLE: the closed form of the log-likelihood at σ² = RSS / (n - p).
    np.testing.assert_allclose(log_prob, -149 * (np.log(2 * np.pi * fit.sigma2) + 1), rtol=1e-10)
  # Recovers the generating process, and the criteria pick its order.
  y = simulate_ar(rng, 0.5, np.array([0.6, -0.3]), 0.7, 3000)
  fit = ar.fit_ar(jnp.asarray(y, jnp.float32), 2)
  np.testing.assert_allclose(fit.phi, [0.6, -0.3], atol=0.05)
  assert fit.sigma2.dtype == jnp.float32
  assert ar.select_order(jnp.asarray(y), 6, "bic")[0] == 2


def test_forecast_matches_simulated_futures():
  """The h-step mean and error std against 20,000 simulated continuations of the same series."""
  mu, phi, sigma = 0.2, np.array([0.5, 0.3]), 1.0
  rng = np.random.default_rng(1)
  y = simulate_ar(rng, mu, phi, sigma, 50)
  pred = ar.forecast(mu, jnp.asarray(phi), sigma ** 2, jnp.asarray(y), 5)
  paths = np.tile(y[-2:], (20000, 1))
  for _ in range(5):
    paths = np.concatenate([paths, mu + paths[:, -1:] * phi[0] + paths[:, -2:-1] * phi[1]
                            + sigma * rng.normal(size=(20000, 1))], axis=1)
  future = paths[:, 2:]
  assert np.all(np.abs(pred.mean - future.mean(0)) < 4 * future.std(0) / np.sqrt(20000))
  np.testing.assert_allclose(pred.std, future.std(0), rtol=0.03)
  np.testing.assert_allclose(pred.std[:2], [1.0, np.sqrt(1 + 0.5 ** 2)], rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: ar.fit_ar(jnp.ones(4), 2), "too short for an AR\\(2\\)"),
    (lambda: ar.fit_ar(jnp.ones((2, 9)), 1), "one series"),
    (lambda: ar.fit_ar(jnp.ones(9), -1), "integer >= 0"),
    (lambda: ar.ar_log_prob(0.0, jnp.ones(3), 1.0, jnp.ones(3)), "too short for an AR\\(3\\)"),
    (lambda: ar.select_order(jnp.ones(9), 3, "hqic"), "unknown information criterion"),
])
def test_ar_bad_input(call, message):
  with pytest.raises(ValueError, match=message):
    call()


class ARLogProbVariantsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_variants_agree_in_float32(self):
    y = jnp.asarray(simulate_ar(np.random.default_rng(2), 0.0, np.array([0.4]), 1.0, 64), jnp.float32)
    value = self.variant(ar.ar_log_prob)(0.1, jnp.array([0.4]), 1.2, y)
    assert value.dtype == jnp.float32
    np.testing.assert_allclose(value, ar.ar_log_prob(0.1, jnp.array([0.4]), 1.2, y), rtol=1e-6)


# ---------------------------------------------------------------------------- discretized logistic

GRID = np.linspace(-1.0, 1.0, 256, dtype=np.float32)


def test_discretized_logistic_mixture_sums_to_one_over_the_bins():
  rng = np.random.default_rng(3)
  logits, means = rng.normal(size=(6, 3)), rng.uniform(-1.5, 1.5, size=(6, 3))
  log_scales = rng.uniform(-7, 0.5, size=(6, 3))            # from sharp (s ≈ 1e-3) to broad
  log_probs = ar.discretized_logistic_mixture_log_prob(
      GRID[:, None], *(jnp.asarray(a, jnp.float32)[None] for a in (logits, means, log_scales)))
  assert log_probs.shape == (256, 6) and log_probs.dtype == jnp.float32
  np.testing.assert_allclose(jnp.exp(jax.nn.logsumexp(log_probs, axis=0)), 1.0, atol=2e-5)


def test_discretized_logistic_tails_are_exact():
  """Far from the mean σ(a) - σ(b) underflows in float32; the log of the bin mass must still
  equal the closed forms: -b + log(1 - e^{-(a-b)}) above the mean (σ(-b) ≈ e^{-b}), and
  a + log(1 - e^{-(a-b)}) below it, accurate to e^{-a} relative."""
  h, s = 1.0 / 255, 0.01
  width = 2 * h / s
  x = jnp.asarray(GRID[[5, 20, 40]])
  for sign in (1.0, -1.0):
    mean = -sign * 1.5                              # the bins are 30-150 scales from the mean
    values = np.asarray(dl.discretized_logistic_log_prob(sign * x, mean, np.log(s)), np.float64)
    a = (sign * np.asarray(x, np.float64) + h - mean) / s
    b = a - width
    closed = (-b if sign > 0 else a) + np.log(-np.expm1(-width))
    assert np.all(np.isfinite(values)) and np.all(values < -25)
    np.testing.assert_allclose(values, closed, rtol=1e-5)
  # and in the bulk, the plain difference of two sigmoids in float64
  a, b = (np.asarray(GRID[100:120], np.float64) + h) / 0.3, (np.asarray(GRID[100:120], np.float64) - h) / 0.3
  plain = np.log(1 / (1 + np.exp(-a)) - 1 / (1 + np.exp(-b)))
  np.testing.assert_allclose(dl.discretized_logistic_log_prob(GRID[100:120], 0.0, np.log(0.3)), plain, rtol=1e-5)
  # gradients stay finite at the open edges and in the tails
  grad = jax.grad(lambda m: dl.discretized_logistic_log_prob(GRID[[0, 5, 255]], m, -4.0).sum())(0.9)
  assert np.isfinite(grad)


def test_pixel_mixture_normalises_over_colour_pixels_and_samples_its_law():
  """The probabilities of all 8³ colour pixels on an 8-level grid sum to one (the channels
  coupled through the R -> G -> B coefficients), and samples follow them."""
  num_bins, k = 8, 2
  rng = np.random.default_rng(4)
  outputs = jnp.asarray(rng.normal(size=dl.pixel_mixture_size(3, k)), jnp.float32)
  levels = np.linspace(-1, 1, num_bins)
  pixels = jnp.asarray(list(itertools.product(levels, repeat=3)), jnp.float32)
  log_p = dl.pixel_mixture_log_prob(pixels, jnp.broadcast_to(outputs, (len(pixels), outputs.size)), k, num_bins)
  np.testing.assert_allclose(jnp.exp(log_p).sum(), 1.0, atol=1e-5)
  n = 100_000
  samples = dl.sample_pixel_mixture(jax.random.key(0), jnp.broadcast_to(outputs, (n, outputs.size)),
                                    3, k, num_bins)
  index = np.round((np.asarray(samples) + 1) * (num_bins - 1) / 2).astype(int) @ [64, 8, 1]
  p = np.exp(np.asarray(log_p, np.float64))
  total_variation = 0.5 * np.abs(np.bincount(index, minlength=512) / n - p).sum()
  # its expectation under exact sampling: ½ Σ E|f - p| ≈ ½ Σ sqrt(2 p (1 - p) / (π n))
  assert total_variation < 1.3 * 0.5 * np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * n)))


class MixtureVariantsTest(chex.TestCase):

  @chex.all_variants(with_pmap=False)
  def test_variants(self):
    args = (jnp.ones((2, 4)), jnp.zeros((2, 4)), jnp.full((2, 4), -2.0))
    value = self.variant(ar.discretized_logistic_mixture_log_prob)(GRID[:2], *args)
    np.testing.assert_allclose(value, ar.discretized_logistic_mixture_log_prob(GRID[:2], *args), rtol=1e-6)


# ---------------------------------------------------------------------------- networks


NETWORKS = {  # name: (model, example input)
    "fixed_order": (FixedOrderMLP(context=6, hidden_sizes=(16,)), jnp.zeros((1, 6))),
    "fvsbn": (MADE(hidden_sizes=()), jnp.zeros((1, 6))),
    "nade": (NADE(hidden_size=8), jnp.zeros((1, 6))),
    "made": (MADE(hidden_sizes=(32, 32)), jnp.zeros((1, 6))),
    "pixelcnn": (PixelCNN(channels=8, num_layers=4), jnp.zeros((1, 4, 4, 1))),
    "pixelcnn_colour": (PixelCNN(channels=8, num_layers=4), jnp.zeros((1, 3, 4, 3))),
}


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_autoregressive_property_by_jacobian(name):
  """∂ output_i / ∂ x_j is exactly zero unless position j comes before i, and nonzero (at
  one of four inputs) for every earlier j: for the PixelCNN, no blind spot."""
  model, x = NETWORKS[name]
  params = model.init(jax.random.key(0), x)
  xs = jax.random.normal(jax.random.key(1), (4, *x.shape[1:]))   # ReLUs off at one x: take 4
  positions, per_position = likelihood.event_layout(x.shape[1:])
  jac = jax.vmap(jax.jacfwd(lambda v: model.apply(params, v[None])[0]))(xs)
  jac = np.abs(np.asarray(jac).reshape(4, positions, -1, positions, per_position)).max(axis=(0, 2, 4))
  before = np.tril(np.ones((positions, positions)), -1).astype(bool)   # [i, j]: j before i
  assert np.all(jac[~before] == 0.0)
  assert np.all(jac[before] > 0.0)


def test_order_agnostic_made_follows_each_ordering_and_its_ensemble_is_normalised():
  """Under ordering k, ∂ logit_i / ∂ x_j ≠ 0 exactly when j comes before i in order_k; the
  ensemble (1/K) Σ_k p_k sums to one over all 2⁵ vectors; sampling under one ordering reproduces
  its probabilities, where the canvas is filled in that ordering."""
  dim, num_masks = 5, 3
  model = OrderAgnosticMADE(hidden_sizes=(32,), num_masks=num_masks)
  orders = made_orderings(dim, num_masks)
  assert np.array_equal(orders[0], np.arange(dim)) and not np.array_equal(orders[1], orders[0])
  params = model.init(jax.random.key(0), jnp.zeros((1, dim)), jnp.zeros(1, jnp.int32))
  params = jax.tree.map(lambda p: p + 0.5 * jax.random.normal(jax.random.key(3), p.shape), params)
  xs = jax.random.normal(jax.random.key(1), (4, dim))
  for k in range(num_masks):
    jac = jax.vmap(jax.jacfwd(lambda v: model.apply(params, v[None], jnp.array([k]))[0]))(xs)
    rank = np.argsort(orders[k])                       # rank[i]: step at which x_i is drawn
    before = rank[None, :] < rank[:, None]             # [i, j]: j drawn before i
    np.testing.assert_array_equal(np.abs(np.asarray(jac)).max(0) > 0, before)
  x = binary_vectors(dim)
  per_mask = jnp.stack([likelihood.bernoulli_log_likelihood(
      model.apply(params, x, jnp.full(len(x), k)), x) for k in range(num_masks)])
  np.testing.assert_allclose(jnp.exp(per_mask).sum(1), 1.0, rtol=1e-5)
  n = 20_000
  keys = jax.random.split(jax.random.key(2), n)
  samples = jax.jit(lambda keys: likelihood.sample_in_order(
      lambda c: model.apply(params, c, jnp.full(n, 1)), likelihood.draw_bernoulli, keys, (dim,),
      orders=jnp.broadcast_to(jnp.asarray(orders[1]), (n, dim))))(keys)
  index = np.asarray(samples).astype(int) @ (2 ** np.arange(dim)[::-1])
  frequencies = np.bincount(index, minlength=2 ** dim) / n
  p = np.exp(np.asarray(per_mask[1], np.float64))
  assert 0.5 * np.abs(frequencies - p).sum() < 1.5 * 0.5 * np.sum(np.sqrt(2 * p * (1 - p) / (np.pi * n)))


TOKEN_NETWORKS = {
    "transformer": lambda vocab, length, classes=0: CausalTransformer(
        num_layers=2, num_heads=2, embed_dim=16, vocab_size=vocab, max_len=length, num_classes=classes),
    "gru": lambda vocab, length, classes=0: PixelRNN(16, vocab, "gru", classes),
    "lstm": lambda vocab, length, classes=0: PixelRNN(16, vocab, "lstm", classes),
}


@pytest.mark.parametrize("name", sorted(TOKEN_NETWORKS))
def test_token_network_output_depends_only_on_earlier_tokens(name):
  model = TOKEN_NETWORKS[name](5, 6)
  tokens = jnp.asarray(np.random.default_rng(5).integers(0, 5, size=(1, 6)))
  params = model.init(jax.random.key(0), tokens)
  base = model.apply(params, tokens)
  for j in range(6):
    changed = model.apply(params, tokens.at[0, j].set((tokens[0, j] + 1) % 5))
    differs = np.abs(np.asarray(changed - base)[0]).max(axis=-1) > 0
    np.testing.assert_array_equal(differs, np.arange(6) > j)


def binary_vectors(dim):
  return jnp.asarray(list(itertools.product([0.0, 1.0], repeat=dim)))


def test_probabilities_of_every_binary_input_sum_to_one():
  x = binary_vectors(5)
  for model in (MADE(hidden_sizes=(8,)), NADE(hidden_size=4), FixedOrderMLP(2, (8,))):
    params = model.init(jax.random.key(0), x[:1])
    params = jax.tree.map(lambda p: p + 0.5 * jax.random.normal(jax.random.key(2), p.shape), params)
    total = jnp.exp(likelihood.bernoulli_log_likelihood(model.apply(params, x), x)).sum()
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)
  cnn = PixelCNN(channels=4, num_layers=1)
  images = binary_vectors(4).reshape(16, 2, 2, 1)
  params = cnn.init(jax.random.key(0), images[:1])
  total = jnp.exp(likelihood.bernoulli_log_likelihood(cnn.apply(params, images), images)).sum()
  np.testing.assert_allclose(total, 1.0, rtol=1e-5)
  tokens = jnp.asarray(list(itertools.product(range(3), repeat=3)))
  for model in (CausalTransformer(num_layers=1, num_heads=1, embed_dim=8, vocab_size=3, max_len=3),
                PixelRNN(8, 3, "lstm")):
    params = model.init(jax.random.key(0), tokens[:1])
    total = jnp.exp(likelihood.categorical_log_likelihood(model.apply(params, tokens), tokens)).sum()
    np.testing.assert_allclose(total, 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["transformer", "gru"])
def test_cached_samples_equal_uncached_samples(name):
  """The transformer's KV cache (the RNN's state) gives the samples of a full pass per token."""
  model = TOKEN_NETWORKS[name](7, 12, 3)
  params = model.init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32), jnp.zeros(1, jnp.int32))
  keys = jax.random.split(jax.random.key(1), 8)
  labels = jnp.arange(8) % 3

  @jax.jit
  def both(keys):
    uncached = likelihood.sample_in_order(
        lambda t: model.apply(params, t, labels), likelihood.draw_categorical, keys, (12,), jnp.int32)
    step = lambda cache, previous, p: model.apply(params, cache, previous, p, labels, method=model.decode)
    cached = likelihood.sample_with_cache(step, model.init_cache(8), likelihood.draw_categorical, keys, 12)
    return uncached, cached

  uncached, cached = both(keys)
  np.testing.assert_array_equal(uncached, cached)
  assert len(np.unique(np.asarray(cached))) > 3
  # per-example keys: a sample does not depend on the rest of the batch
  np.testing.assert_array_equal(both(jnp.concatenate([keys[:2]] * 4))[1][:2], cached[:2])


def test_network_bad_input():
  model = CausalTransformer(num_layers=1, num_heads=1, embed_dim=8, vocab_size=3, max_len=4)
  with pytest.raises(ValueError, match="longer than this transformer's max_len=4"):
    model.init(jax.random.key(0), jnp.zeros((1, 5), jnp.int32))
  with pytest.raises(ValueError, match="num_classes=0"):
    PixelCNN(4, 1).init(jax.random.key(0), jnp.zeros((1, 2, 2, 1)), jnp.zeros(1, jnp.int32))


# ---------------------------------------------------------------------------- the task and tools


@pytest.fixture(scope="module")
def points_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ar_2d")
  config = with_overrides(autoregressive_2d.get_config("smoke"), **FEW_STEPS)
  return workdir, autoregressive.train_and_evaluate(config, str(workdir)), config


def test_2d_smoke_run_has_an_exact_density_of_mass_one(points_run):
  workdir, result, config = points_run
  m = result.eval_metrics
  assert m["num_examples"] == 200 and np.isfinite(m["nll"]) and 2.0 < m["data_nll"] < 4.0
  assert (workdir / "samples" / "final_density.png").exists()
  axis = np.linspace(-8, 8, 321, dtype=np.float32)
  grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
  log_p, method = log_prob_tool.log_prob_run(str(workdir), grid)
  assert "exact" in method
  np.testing.assert_allclose(np.exp(log_p.astype(np.float64)).sum() * (axis[1] - axis[0]) ** 2, 1.0, atol=0.01)
  test_points = autoregressive.load_dataset(config.data).test.arrays["x"]
  np.testing.assert_allclose(-log_prob_tool.log_prob_run(str(workdir), test_points)[0].mean(),
                             m["nll"], rtol=1e-5)
  samples = sample_tool.sample_run(str(workdir), 16)
  assert samples.shape == (16, 2) and np.all(np.isfinite(samples))


@pytest.mark.parametrize("kind,variant", [("pixelcnn", "smoke"), ("transformer_8bit", "8bit,smoke")])
def test_image_smoke_runs_sample_and_score_exactly(tmp_path, kind, variant):
  config = with_overrides(autoregressive_digits.get_config(variant), **{**FEW_STEPS, "model.kind": kind})
  m = autoregressive.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert m["num_examples"] == 64
  np.testing.assert_allclose(m["nll_bpd"], m["nll"] / (64 * np.log(2)), rtol=1e-6)
  images = sample_tool.sample_run(str(tmp_path), 4)
  assert images.shape == (4, 8, 8, 1)
  levels = 1 if kind == "pixelcnn" else 255
  np.testing.assert_allclose(images * levels, np.round(images * levels), atol=1e-4)
  log_p, method = log_prob_tool.log_prob_run(str(tmp_path), images)
  assert "exact" in method and np.all(log_p <= 0)
  if kind == "pixelcnn":
    with pytest.raises(ValueError, match="binary images"):
      log_prob_tool.log_prob_run(str(tmp_path), np.full((2, 8, 8, 1), 0.5, np.float32))


def test_class_conditional_smoke_run_scores_the_exact_marginal(tmp_path):
  """log p(x) = log (1/C) Σ_y p(x | y) ≥ log p(x | y*) - log C for every image."""
  config = with_overrides(autoregressive_digits.get_config("conditional,smoke"),
                          **{**FEW_STEPS, "model.kind": "transformer"})
  m = autoregressive.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert m["nll"] <= m["nll_given_label"] + np.log(10) + 1e-4
  assert (tmp_path / "samples" / "final_samples_by_class.png").exists()
  images = sample_tool.sample_run(str(tmp_path), 3)
  log_p, method = log_prob_tool.log_prob_run(str(tmp_path), images)
  assert "over the classes" in method and log_p.shape == (3,) and np.all(log_p <= 0)


@pytest.mark.parametrize("overrides,message", [
    ({"model.kind": "wavenet"}, "unknown model.kind 'wavenet'"),
    ({"model.kind": "made", "model.num_classes": 10}, "takes no labels"),
    ({"model.kind": "nade", "model.num_masks": 4}, "orderings apply to model.kind='made' only"),
    ({"model.num_classes": 20}, "has 10 classes: a class-conditional model needs labelled data"),
    ({"data.transforms": ()}, "models binary images: add 'dynamic_binarize'"),
    ({"model.kind": "pixelcnn_pp"}, "models the raw 8-bit images: set data.transforms=()"),
    ({"model.kind": "made", "model.hidden_sizes": (32,)}, "at least 63 wide"),
    ({"data.name": "two_moons"}, "holds points"),
])
def test_config_mistakes_get_errors_that_say_what_to_fix(tmp_path, overrides, message):
  config = with_overrides(autoregressive_digits.get_config("smoke"), **overrides)
  with pytest.raises(ValueError, match=message):
    autoregressive.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def test_pixelcnn_pp_samples_are_fixed_points_of_the_networks_conditionals_on_colour_images():
  """Each sampled pixel is the draw (same key) from the conditional the likelihood uses, given
  the sample itself in the network's input space (k/255 in [0, 1]): the sampler feeds the
  network what training fed it. (It once fed the [-1, 1] draws, and colour samples came out
  saturated.)"""
  from gen_jax.data.sources import ArraySource, Dataset
  from gen_jax.keys import fold_in
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (16, 3, 3, 3), dtype=np.uint8)
  split = ArraySource({"x": images, "label": np.zeros(16, np.int64)})
  dataset = Dataset("colour", "image", split, split, (3, 3, 3))
  config = with_overrides(autoregressive_digits.get_config("8bit,smoke"))
  task = autoregressive.make_task(config, dataset)
  params = task.init(jax.random.key(0), jnp.asarray(images[:2], jnp.float32) / 255.0)
  keys = jax.random.split(jax.random.key(1), 4)
  samples = jax.jit(task.sample)(params, keys)  # (4, 3, 3, 3) in [0, 1]
  network = autoregressive.model_kind("pixelcnn_pp").build(config.model, (3, 3, 3))
  outputs = network.apply(params, samples).reshape(4, 9, -1)
  for n in range(4):
    for p in range(9):
      pixel = dl.sample_pixel_mixture(fold_in(keys[n], p), outputs[n, p], 3, int(config.model.num_mixtures))
      np.testing.assert_allclose(pixel, 2.0 * samples[n].reshape(9, 3)[p] - 1.0, atol=1e-6)
