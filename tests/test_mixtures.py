"""Gaussian mixtures against truths that cannot be tuned: one EM iteration against the formulas
written out in float64, scikit-learn's GaussianMixture step for step for every covariance type,
scipy's densities, a log-likelihood that never decreases, equal fits on 1 and 4 devices and
from an array_record source, and singular data rescued by reg_covar with a warning."""

import dataclasses
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from experiments import log_prob as log_prob_tool
from experiments import sample as sample_tool
from experiments.configs import mixtures_2d, mixtures_digits
from gen_jax import mixtures
from gen_jax.data import builders, load_dataset
from gen_jax.data.sources import RecordSource
from gen_jax.mixtures import em, gmm as gmm_lib, gradient
from gen_jax.tasks import mixtures as mixtures_task
from gen_jax.training import train
from gen_jax.training.sharding import make_mesh
from tests.helpers import check_points_tools, with_overrides

TYPES = ("full", "diag", "spherical", "tied")


def three_clusters(n=(60, 50, 40), seed=0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  mix = np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]])
  return np.concatenate([rng.normal(size=(n[0], 3)) + 4, 0.5 * rng.normal(size=(n[1], 3)),
                         rng.normal(size=(n[2], 3)) @ mix - 3]).astype(dtype)


def start(x, covariance_type, k=3, seed=0):
  return em.initialize(jnp.asarray(x), k, jax.random.key(seed), covariance_type, 1e-6, "kmeans")


def full_covariances(g):
  return np.asarray(gmm_lib.as_full_covariances(g), np.float64)


def reference_log_prob(g, x):
  """log Σ_k π_k N(x; μ_k, Σ_k) by scipy, (N,)."""
  covs = full_covariances(g)
  parts = [np.log(w) + stats.multivariate_normal(mu, c).logpdf(x)
           for w, mu, c in zip(np.asarray(g.weights), np.asarray(g.means), covs)]
  return logsumexp(np.stack(parts, 1), axis=1)


def fit_quietly(*args, **kwargs):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return mixtures.fit_gmm(*args, **kwargs)


# ---------------------------------------------------------------------------- the model and EM


@pytest.mark.parametrize("covariance_type", TYPES)
def test_gmm_log_prob_matches_scipy(covariance_type):
  with jax.enable_x64(True):
    x = three_clusters()
    g = start(x, covariance_type)
    np.testing.assert_allclose(mixtures.gmm_log_prob(g, jnp.asarray(x)), reference_log_prob(g, x), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_one_em_iteration_matches_the_formulas_written_out(covariance_type):
  """r_nk = π_k N_k(x_n) / Σ_j π_j N_j(x_n); n_k = Σ r_nk; μ_k = Σ r_nk x_n / n_k;
  Σ_k = Σ r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / n_k + reg I, then the type's restriction."""
  reg = 1e-3
  with jax.enable_x64(True):
    x = three_clusters()
    g = start(x, covariance_type)
    new, ll = mixtures.em_step(g, jnp.asarray(x), reg)
    log_joint = np.stack([np.log(w) + stats.multivariate_normal(mu, c).logpdf(x) for w, mu, c in
                          zip(np.asarray(g.weights), np.asarray(g.means), full_covariances(g))], 1)
    resp = np.exp(log_joint - logsumexp(log_joint, 1, keepdims=True))
    counts = resp.sum(0)
    means = resp.T @ x / counts[:, None]
    scatter = np.stack([(resp[:, k, None] * (x - means[k])).T @ (x - means[k]) for k in range(3)])
    expected = {"full": scatter / counts[:, None, None] + reg * np.eye(3),
                "diag": np.diagonal(scatter, axis1=1, axis2=2) / counts[:, None] + reg,
                "spherical": np.trace(scatter, axis1=1, axis2=2) / (3 * counts) + reg,
                "tied": scatter.sum(0) / len(x) + reg * np.eye(3)}[covariance_type]
    np.testing.assert_allclose(ll, logsumexp(log_joint, 1).mean(), rtol=1e-12)
    np.testing.assert_allclose(new.weights, counts / len(x), rtol=1e-10)
    np.testing.assert_allclose(new.means, means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(new.covariances, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_fit_matches_scikit_learn_step_for_step(covariance_type):
  from sklearn.mixture import GaussianMixture as SklearnMixture
  with jax.enable_x64(True):
    x = three_clusters()
    g0 = start(x, covariance_type)
    c0 = np.asarray(g0.covariances)
    precisions = np.linalg.inv(c0) if covariance_type in ("full", "tied") else 1.0 / c0
    for iterations in (1, 4):
      reference = SklearnMixture(3, covariance_type=covariance_type, max_iter=iterations, tol=0,
                                 weights_init=np.asarray(g0.weights), means_init=np.asarray(g0.means),
                                 precisions_init=precisions, reg_covar=1e-6)
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ConvergenceWarning at tol=0
        reference.fit(x)
      g, lls = fit_quietly(x, 3, None, covariance_type, max_iters=iterations, tol=0.0,
                           init=(g0.weights, g0.means, g0.covariances))
      assert len(lls) == iterations
      np.testing.assert_allclose(g.weights, reference.weights_, rtol=1e-10)
      np.testing.assert_allclose(g.means, reference.means_, rtol=1e-10, atol=1e-12)
      np.testing.assert_allclose(g.covariances, reference.covariances_, rtol=1e-9, atol=1e-12)
      np.testing.assert_allclose(lls[-1], reference.lower_bound_, rtol=1e-12)
      np.testing.assert_allclose(mixtures.gmm_log_prob(g, jnp.asarray(x)), reference.score_samples(x), rtol=1e-10)
      np.testing.assert_allclose(mixtures.bic(g, jnp.asarray(x)), reference.bic(x), rtol=1e-10)
      np.testing.assert_allclose(mixtures.aic(g, jnp.asarray(x)), reference.aic(x), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("init_method", ["kmeans++", "random"])
def test_the_log_likelihood_never_decreases(covariance_type, init_method):
  with jax.enable_x64(True):
    x = three_clusters(seed=3)
    _, lls = fit_quietly(x, 4, jax.random.key(1), covariance_type, max_iters=40, tol=0.0,
                         init_method=init_method)
    assert len(lls) == 40 and np.all(np.diff(np.asarray(lls)) >= -1e-12)


def test_tol_stops_when_the_change_is_below_it():
  x = three_clusters(dtype=np.float32)
  _, lls = fit_quietly(x, 3, jax.random.key(0), max_iters=500, tol=1e-4, init_method="random")
  assert 3 <= len(lls) < 500 and abs(float(lls[-1] - lls[-2])) < 1e-4 <= abs(float(lls[-2] - lls[-3]))


def test_restarts_in_parallel_keep_the_best():
  x = three_clusters(n=(40, 40, 40), seed=5, dtype=np.float32)
  key = jax.random.key(2)
  _, best = fit_quietly(x, 5, key, max_iters=30, tol=0.0, n_init=4, init_method="random")
  singles = [fit_quietly(x, 5, None, max_iters=30, tol=0.0, init=(s.weights, s.means, s.covariances))[1][-1]
             for s in (em.initialize(x, 5, k, "full", 1e-6, "random") for k in jax.random.split(key, 4))]
  np.testing.assert_allclose(best[-1], max(singles), rtol=1e-5)


def test_kmeans_recovers_well_separated_centres():
  rng = np.random.default_rng(0)
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  x = jnp.asarray(np.concatenate([c + 0.1 * rng.normal(size=(50, 2)) for c in centres]), jnp.float32)
  seeds = mixtures.kmeans_plusplus(x, 3, jax.random.key(0))
  assert all(np.any(np.all(np.asarray(x) == s, axis=1)) for s in np.asarray(seeds))  # data points
  found = np.asarray(mixtures.kmeans(x, seeds))
  distances = np.linalg.norm(found[:, None] - centres[None], axis=-1)
  assert sorted(distances.argmin(0).tolist()) == [0, 1, 2] and distances.min(0).max() < 0.05


def test_samples_have_the_mixture_moments():
  with jax.enable_x64(True):
    g = start(three_clusters(), "full")
    draws = np.asarray(gmm_lib.sample(g, jax.random.split(jax.random.key(0), 40_000)))
    w, mu, covs = np.asarray(g.weights), np.asarray(g.means), full_covariances(g)
    mean = w @ mu
    second = np.einsum("k,kde->de", w, covs + np.einsum("kd,ke->kde", mu, mu))
    np.testing.assert_allclose(draws.mean(0), mean, atol=5 * np.sqrt(np.diag(second - np.outer(mean, mean)) / 40_000).max())
    np.testing.assert_allclose(np.cov(draws.T), second - np.outer(mean, mean), atol=0.15)


class PureFunctionsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_log_prob_and_em_step_agree_with_and_without_jit(self):
    x = jnp.asarray(three_clusters(dtype=np.float32))
    g = start(x, "full")
    log_prob = self.variant(mixtures.gmm_log_prob)
    step = self.variant(lambda g, x: mixtures.em_step(g, x, 1e-6))
    np.testing.assert_allclose(log_prob(g, x), mixtures.gmm_log_prob(g, x), rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(step(g, x), mixtures.em_step(g, x, 1e-6), rtol=1e-5, atol=1e-5)

  def test_em_step_compiles_once_per_shape(self):
    x = jnp.asarray(three_clusters(dtype=np.float32))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(g, x):
      return mixtures.em_step(g, x, 1e-6)

    g = start(x, "diag")
    for _ in range(3):
      g, _ = step(g, x + 0.0)


def test_chunked_statistics_equal_the_whole_batch_sums():
  x = jnp.asarray(three_clusters(dtype=np.float32))
  g = start(x, "tied")
  whole = gmm_lib.statistics(g, x)
  chunked = gmm_lib.chunked_statistics(g, x, chunk_size=32)   # 150 rows: 5 chunks, the last padded
  chex.assert_trees_all_close(chunked, whole, rtol=1e-5, atol=1e-4)


def test_one_and_four_devices_give_the_same_parameters():
  x = three_clusters(n=(61, 50, 40), dtype=np.float32)   # 151 rows: padded to 152 on 4 devices
  one, lls_one = fit_quietly(x, 3, jax.random.key(0), max_iters=20, tol=0.0)
  four, lls_four = fit_quietly(x, 3, jax.random.key(0), max_iters=20, tol=0.0, mesh=make_mesh(4), chunk_size=16)
  chex.assert_trees_all_close(four, one, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(lls_four, lls_one, rtol=1e-5)


# ---------------------------------------------------------------------------- bad input and degenerate data


@pytest.mark.parametrize("x, k, covariance_type, message", [
    (np.zeros((5, 2), np.float32), 6, "full", r"num_components=6 must be between 1 and the number of points \(5\)"),
    (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]], np.float32), 2, "full", "NaN or inf .* row 1, column 0"),
    (np.array([[0.0, np.inf], [1.0, 2.0]], np.float32), 1, "full", "NaN or inf"),
    (np.zeros((5, 2), np.float32), 2, "ful", "unknown covariance_type 'ful'"),
    (np.zeros((5, 2, 2), np.float32), 2, "full", r"shape \(num_points, dim\), got shape \(5, 2, 2\)"),
    (np.zeros(5, np.float32), 2, "full", r"got shape \(5,\)"),
])
def test_bad_input_gets_one_clear_error(x, k, covariance_type, message):
  with pytest.raises(ValueError, match=message):
    mixtures.fit_gmm(x, k, jax.random.key(0), covariance_type)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied"])   # spherical: the mean variance stays > 0
def test_a_constant_feature_is_rescued_by_reg_covar_with_a_warning(covariance_type):
  x = three_clusters(dtype=np.float32)
  x[:, 2] = 1.5   # singular: every covariance has a zero direction
  with pytest.warns(UserWarning, match="singular empirical covariance.*reg_covar=0.0001"):
    g, lls = mixtures.fit_gmm(x, 3, jax.random.key(0), covariance_type, reg_covar=1e-4, max_iters=200)
  assert np.all(np.isfinite(np.asarray(g.covariances))) and np.all(np.isfinite(np.asarray(lls)))


@pytest.mark.parametrize("covariance_type", ["full", "spherical"])
def test_duplicate_points_collapse_a_component_that_reg_covar_keeps_finite(covariance_type):
  x = np.concatenate([three_clusters(dtype=np.float32), np.full((30, 3), 9.0, np.float32)])
  with pytest.warns(UserWarning, match=r"components \[\d\]"):
    g, _ = mixtures.fit_gmm(x, 4, jax.random.key(0), covariance_type, reg_covar=1e-3, max_iters=100)
  assert np.all(np.isfinite(np.asarray(g.covariances)))


def test_without_reg_covar_a_singular_covariance_is_a_clear_error():
  x = three_clusters(dtype=np.float32)
  x[:, 2] = 1.5
  with pytest.raises(ValueError, match="raise reg_covar"):
    fit_quietly(x, 3, jax.random.key(0), "full", reg_covar=0.0)


# ---------------------------------------------------------------------------- the seed's gradient route


def test_gradient_parameters_round_trip_and_give_the_same_density():
  with jax.enable_x64(True):
    x = three_clusters()
    g = start(x, "full")
    params = gradient.to_unconstrained(g)
    back = gradient.to_mixture(params)
    chex.assert_trees_all_close(back, g, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gradient.log_prob(params, jnp.asarray(x)), reference_log_prob(g, x), rtol=1e-10)
    loss, terms = gradient.nll_loss(params, jnp.asarray(x))
    np.testing.assert_allclose(loss, -reference_log_prob(g, x).mean(), rtol=1e-10)
    # at an EM fixed point the log-likelihood's gradient in the means vanishes
    fitted, _ = fit_quietly(x, 3, None, "full", max_iters=500, tol=0.0, reg_covar=0.0,
                            init=(g.weights, g.means, g.covariances))
    grads = jax.grad(lambda p: gradient.nll_loss(p, jnp.asarray(x))[0])(gradient.to_unconstrained(fitted))
    assert float(jnp.abs(grads["means"]).max()) < 1e-8 and float(jnp.abs(grads["logits"]).max()) < 1e-8


# ---------------------------------------------------------------------------- the task


def points_config(**overrides):
  return with_overrides(mixtures_2d.get_config("smoke"), **overrides)


@pytest.fixture(scope="module")
def points(data_dir):
  return load_dataset(points_config().data)


def quiet(task):
  return dataclasses.replace(task, write_figures=None, report_carry=None)


def test_2d_run_writes_figures_and_its_tools_sample_and_score(tmp_path):
  config = points_config()
  m = mixtures_task.train_and_evaluate(config, str(tmp_path)).eval_metrics
  for name in ("mixture", "em_iterations", "em_vs_gradient"):
    assert (tmp_path / "samples" / f"final_{name}.png").exists()
  assert m["em_iterations"] == len(m["em_log_likelihood"]) and np.all(np.diff(m["em_log_likelihood"]) >= -1e-5)
  assert m["nll"] > m["data_nll"] - 0.2 and m["num_parameters"] == 4 * (1 + 2 + 3) - 1
  check_points_tools(tmp_path, config, m["nll"], "exact")


def test_em_task_equals_fit_gmm_and_resumes_bit_exact_and_matches_on_four_devices(tmp_path, points):
  config = lambda n: points_config(**{"num_devices": n, "train.num_steps": 12, "train.checkpoint_every": 6,
                                      "em.tol": 0.0})
  task = quiet(mixtures_task.make_task(config(1), points))
  straight = train(task, config(1), str(tmp_path / "straight"), points)
  train(task, config(1), str(tmp_path / "resumed"), points, stop_after_step=6)
  resumed = train(task, config(1), str(tmp_path / "resumed"), points)
  chex.assert_trees_all_equal(jax.device_get(straight.state), jax.device_get(resumed.state))
  four = train(task, config(4), str(tmp_path / "four"), points)
  chex.assert_trees_all_close(jax.device_get(four.state["params"]), jax.device_get(straight.state["params"]),
                              rtol=1e-4, atol=1e-6)
  # 12 steps of 4 batches: 3 exact EM iterations from the run's start, as fit_gmm computes them
  first = jax.tree.map(lambda v: v[0], jax.device_get(straight.state["carry"]["snapshots"]))
  x = points.train.arrays["x"]
  g, _ = fit_quietly(x, 4, None, "full", max_iters=3, tol=0.0,
                     init=(first["weights"], first["means"], first["covariances"]))
  chex.assert_trees_all_close(jax.device_get(straight.state["params"]),
                              {"weights": g.weights, "means": g.means, "covariances": g.covariances},
                              rtol=1e-4, atol=1e-6)


def test_gradient_route_trains_the_same_mixture_family(tmp_path, points):
  config = points_config(**{"model.kind": "gradient", "train.batch_size": 100})
  m = train(quiet(mixtures_task.make_task(config, points)), config, str(tmp_path), points).eval_metrics
  assert np.isfinite(m["nll"]) and m["nll"] > m["data_nll"] - 0.2


@pytest.mark.parametrize("overrides,message", [
    ({"model.covariance_type": "ful"}, "unknown covariance_type 'ful'"),
    ({"model.kind": "variational"}, "model.kind='variational' is not a mixture fit"),
    ({"model.init": "kmeans||"}, "model.init='kmeans||'"),
    ({"model.num_components": 5000}, "model.num_components=5000 must be between 1 and"),
    ({"train.batch_size": 300}, "train.batch_size=300 must divide the 2000 training points"),
    ({"model.kind": "gradient", "model.covariance_type": "diag"}, "fits full covariances"),
    ({"data.transforms": ("dynamic_binarize",)}, "set data.transforms=()"),
])
def test_bad_configs_get_one_clear_error(points, overrides, message):
  with pytest.raises(ValueError, match=message):
    mixtures_task.make_task(points_config(**overrides), points)


def test_image_em_streams_from_array_record_as_from_memory(tmp_path, data_dir):
  """Digits read batch by batch from the array_record files (tfds.data_source, random access)
  give the same fit as the split held in memory."""
  config = with_overrides(mixtures_digits.get_config("smoke"), **{"train.num_steps": 6})
  in_memory = load_dataset(config.data)
  assert isinstance(in_memory.train, type(in_memory.test)) and not isinstance(in_memory.train, RecordSource)
  sources = builders.Digits(data_dir=in_memory.info["data_dir"].rsplit("/digits", 1)[0],
                            file_format="array_record").as_data_source()
  rename = {"image": "x", "label": "label"}
  streamed = dataclasses.replace(in_memory, train=RecordSource(sources["train"], rename),
                                 test=RecordSource(sources["test"], rename))
  a = train(quiet(mixtures_task.make_task(config, in_memory)), config, str(tmp_path / "memory"), in_memory)
  b = train(quiet(mixtures_task.make_task(config, streamed)), config, str(tmp_path / "stream"), streamed)
  chex.assert_trees_all_equal(jax.device_get(a.state["params"]), jax.device_get(b.state["params"]))
  assert a.eval_metrics["nll"] == b.eval_metrics["nll"]
  np.testing.assert_allclose(a.eval_metrics["nll_bpd"], a.eval_metrics["nll"] / (64 * np.log(2)), rtol=1e-6)


def test_image_smoke_run_samples_and_scores_images(tmp_path):
  config = mixtures_digits.get_config("smoke")
  m = mixtures_task.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert np.isfinite(m["nll"]) and (tmp_path / "samples" / "final_samples.png").exists()
  images = sample_tool.sample_run(str(tmp_path), 4)
  assert images.shape == (4, 8, 8, 1) and images.min() >= 0 and images.max() <= 1
  log_p, method = log_prob_tool.log_prob_run(str(tmp_path), images)
  assert "dequantization" in method and log_p.shape == (4,) and np.all(log_p < 0)
