"""Normalizing flows against truths that cannot be tuned: every bijector's log-det against
log|det J| from jax.jacfwd and slogdet in float64, round trips, triangular autoregressive
Jacobians, 2-D densities that integrate to one, actnorm's init, the 1x1 conv's h·w factor."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import log_prob as log_prob_tool
from experiments import sample as sample_tool
from experiments.configs import flows_2d, flows_digits
from gen_jax.flows import bijectors as bij
from gen_jax.flows import density as flow_density
from gen_jax.flows import dequantization as deq
from gen_jax.nets import flows as flow_nets
from gen_jax.tasks import flows
from gen_jax.training.workdir import WorkdirMismatchError
from tests.helpers import FEW_STEPS, with_overrides

D = 4
NOISE = 0.1  # parameters moved off their init, the densities still inside the grid
IMAGE = (2, 2, 4)


def _linear_conditioner(rng, dim, num_params, scale, strictly_lower=False):
  """θ(x) = scale·tanh(x A + c) reshaped (..., dim, num_params); A strictly lower-triangular
  per parameter (θ_i from x_<i) for autoregressive layers."""
  a = rng.normal(size=(dim, dim, num_params)) / (1.5 * np.sqrt(dim))
  if strictly_lower:
    a = a * np.triu(np.ones((dim, dim)), 1)[:, :, None]  # a[j, i]: input j feeds output i > j
  c = 0.3 * rng.normal(size=(dim, num_params)) + 1.5  # log-scales mostly near +scale: |log det| ≫ 0
  return {"a": a, "c": c}, lambda p, x: scale * jnp.tanh(jnp.einsum("...j,jip->...ip", x, p["a"]) + p["c"])


def _image_conditioner(rng, num_params, scale):
  n = int(np.prod(IMAGE))
  a = rng.normal(size=(n, n * num_params)) / np.sqrt(n)
  return {"a": a}, lambda p, x: scale * jnp.tanh(  # + 1: log-scales mostly positive, |log det| ≫ 0
      (x.reshape(x.shape[0], -1) @ p["a"]).reshape(*x.shape, num_params) + 1.0)


# Conditioner output scales: large enough that every log-det is far from zero.
SCALES = {"affine": 1.5, "additive": 1.5, "spline": 4.0}


def bijector_cases():
  rng = np.random.default_rng(0)
  cases = {}
  w = np.array([0.5, -0.3, 0.2])
  cases["planar"] = (bij.PLANAR, {"u": 13 * w + 0.1 * rng.normal(size=3), "w": w, "b": np.float64(0.3)},
                     (3,), None)  # w·û ≈ 4: log det = log(1 + 4 tanh') well above 0
  cases["radial"] = (bij.RADIAL, {"center": rng.normal(size=3), "log_alpha": np.float64(-1.0),
                                  "beta": np.float64(2.0)}, (3,), None)
  for name, transform in (("affine", bij.AFFINE), ("additive", bij.ADDITIVE), ("spline", bij.spline(5, 3.0))):
    p, cond = _linear_conditioner(rng, D, transform.num_params, SCALES[name])
    cases[f"coupling_{name}"] = (bij.coupling(bij.checkerboard_mask((D,)), cond, transform), p, (D,), None)
  p, cond = _image_conditioner(rng, 2, 1.0)
  cases["coupling_affine_image"] = (bij.coupling(bij.channel_mask(IMAGE, 1), cond, bij.AFFINE, 3),
                                    p, IMAGE, None)
  for name, transform in (("affine", bij.AFFINE), ("spline", bij.spline(4, 3.0))):
    p, cond = _linear_conditioner(rng, D, transform.num_params, SCALES[name], strictly_lower=True)
    cases[f"maf_{name}"] = (bij.masked_autoregressive(cond, transform, D), p, (D,), "lower")
    if name == "affine":  # IAF is MAF with the transform's directions swapped, inverted
      cases[f"iaf_{name}"] = (bij.inverse_autoregressive(cond, transform, D), p, (D,), "lower")
  actnorm = {"bias": rng.normal(size=4), "log_scale": 0.5 * rng.normal(size=4) + 0.4}
  cases["actnorm"] = (bij.actnorm(3), actnorm, IMAGE, None)
  w = rng.normal(size=(4, 4)) + 2 * np.eye(4)
  cases["conv1x1"] = (bij.conv1x1(3), {"weight": w}, IMAGE, None)
  lu, const = bij.conv1x1_lu_init(rng, 4)
  lu = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in lu.items()}
  cases["conv1x1_lu"] = (bij.conv1x1(3), {**lu, **const}, IMAGE, None)
  cases["squeeze"] = (bij.squeeze_bijector(), None, (4, 2, 1), None)
  cases["permutation"] = (bij.permutation([2, 0, 3, 1]), None, (D,), None)
  p_img, cond_img = _image_conditioner(rng, 2, 1.0)
  glow_step = bij.chain([bij.actnorm(3), bij.conv1x1(3),
                         bij.coupling(bij.channel_mask(IMAGE), cond_img, bij.AFFINE, 3)])
  cases["chain_glow_step"] = (glow_step, (actnorm, {**lu, **const}, p_img), IMAGE, None)
  cases["invert_planar"] = (bij.invert(bij.PLANAR), cases["planar"][1], (3,), None)
  p, cond = _image_conditioner(rng, 2, 1.0)
  cases["coupling_affine_image_checkerboard"] = (
      bij.coupling(bij.checkerboard_mask(IMAGE, 1), cond, bij.AFFINE, 3), p, IMAGE, None)
  return cases


CASES = bijector_cases()
# Volume-preserving by construction: their log-det is exactly zero.
ZERO_LOG_DET = ("coupling_additive", "squeeze", "permutation")


def _as(tree, dtype):
  return jax.tree.map(lambda v: np.asarray(v, dtype) if np.issubdtype(np.asarray(v).dtype, np.floating)
                      else v, tree)


@pytest.mark.parametrize("name", sorted(CASES))
def test_log_det_is_the_jacobians_and_the_inverse_undoes_the_forward(name):
  bijector, params, shape, triangular = CASES[name]
  rng = np.random.default_rng(1)
  with jax.enable_x64(True):
    x = 1.5 * rng.normal(size=(3, *shape))
    params64 = _as(params, np.float64)

    @jax.jit
    def run(params, x):
      y, log_det = bijector.forward_and_log_det(params, x)
      x_back, log_det_inverse = bijector.inverse_and_log_det(params, y)
      flat = lambda f, v, like: f(params, v.reshape(1, *like.shape[1:]))[0].reshape(-1)
      jac = jax.vmap(jax.jacfwd(lambda v: flat(bijector.forward, v, x)))(x.reshape(len(x), -1))
      jac_inverse = jax.vmap(jax.jacfwd(lambda v: flat(bijector.inverse, v, y)))(y.reshape(len(y), -1))
      return y, log_det, x_back, log_det_inverse, jac, jac_inverse

    y, log_det, x_back, log_det_inverse, jac, jac_inverse = map(np.asarray, run(params64, x))
  assert y.dtype == np.float64 and log_det.shape == (3,)
  np.testing.assert_allclose(log_det, np.linalg.slogdet(jac)[1], rtol=1e-8, atol=1e-8)
  np.testing.assert_allclose(log_det_inverse, np.linalg.slogdet(jac_inverse)[1], rtol=1e-8, atol=1e-8)
  np.testing.assert_allclose(log_det_inverse, -log_det, rtol=1e-8, atol=1e-8)
  np.testing.assert_allclose(x_back, x, rtol=1e-8, atol=1e-8)
  if name in ZERO_LOG_DET:
    np.testing.assert_array_equal(log_det, 0.0)
  else:  # parameters that put the log-det far from zero, so a sign error cannot hide
    assert np.mean(np.abs(log_det)) > 0.5, log_det
  if triangular == "lower":  # ∂y_i/∂x_j = 0 for j > i in the autoregressive order
    np.testing.assert_array_equal(np.triu(jac, 1), 0.0)
    np.testing.assert_array_equal(np.triu(jac_inverse, 1), 0.0)
  # float32 in, float32 out, the same round trip to float32 rounding.
  y32, log_det32 = bijector.forward_and_log_det(_as(params, np.float32), x.astype(np.float32))
  assert y32.dtype == jnp.float32 and log_det32.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(y32), y, rtol=2e-4, atol=2e-4)


def test_conv1x1_log_det_counts_every_position():
  rng = np.random.default_rng(2)
  w = rng.normal(size=(4, 4)) + 2 * np.eye(4)
  x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
  _, log_det = bij.conv1x1(3).forward_and_log_det({"weight": w.astype(np.float32)}, x)
  np.testing.assert_allclose(log_det, 3 * 5 * np.linalg.slogdet(w)[1], rtol=1e-5)


def test_actnorm_init_standardizes_each_channel_and_is_safe_on_a_constant_one():
  rng = np.random.default_rng(3)
  x = rng.normal(loc=[3.0, -1.0, 0.5], scale=[2.0, 0.1, 1.0], size=(16, 5, 5, 3)).astype(np.float32)
  x[..., 2] = 0.7  # a constant channel
  params = bij.actnorm_init(jnp.asarray(x))
  z, log_det = bij.actnorm(3).inverse_and_log_det(params, jnp.asarray(x))
  z = np.asarray(z)
  np.testing.assert_allclose(z[..., :2].mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(z[..., :2].var(axis=(0, 1, 2)), 1.0, rtol=1e-4)
  assert float(params["log_scale"][2]) == 0.0
  np.testing.assert_allclose(z[..., 2], 0.0, atol=1e-6)
  assert np.all(np.isfinite(np.asarray(log_det)))


def test_spline_is_the_identity_outside_its_interval_and_increasing_inside():
  theta = np.random.default_rng(4).normal(size=(1, 3 * 6 - 1)) * 2
  x = jnp.linspace(-5.0, 5.0, 601, dtype=jnp.float32)
  y, log_deriv = bij.rational_quadratic_spline(x, jnp.asarray(theta.repeat(601, 0), jnp.float32), 6, 3.0)
  y, log_deriv = np.asarray(y), np.asarray(log_deriv)
  outside = np.abs(np.asarray(x)) >= 3.0
  np.testing.assert_array_equal(y[outside], np.asarray(x)[outside])
  np.testing.assert_array_equal(log_deriv[outside], 0.0)
  # Non-decreasing to float32 resolution (a bin at the minimum slope rounds flat), with a
  # finite log-derivative everywhere: strictly increasing.
  assert np.all(np.diff(y) >= 0) and np.all(np.isfinite(log_deriv)) and y[-1] - y[0] == 10.0


def _fitted(kind):
  """A 4-layer flow of `kind`, ActNorm initialised on 256 points and every parameter moved
  off its (identity) init."""
  rng = np.random.default_rng(5)
  x = jnp.asarray(rng.normal(size=(256, 2)) * [2.0, 1.0] + [0.5, -1.0], jnp.float32)
  model = flow_nets.Flow(flow_nets.vector_flow_layers(kind, 4, (16, 16), 6, 4.0))
  params = model.init(jax.random.key(0), x)
  leaves, tree = jax.tree.flatten(params)
  noise = [NOISE * rng.normal(size=v.shape).astype(np.float32) for v in leaves]
  return model, jax.tree.unflatten(tree, [v + n for v, n in zip(leaves, noise)])


@pytest.mark.parametrize("kind", sorted(flow_nets.VECTOR_FLOW_KINDS))
def test_every_2d_flow_density_integrates_to_one(kind):
  model, params = _fitted(kind)
  limit, n = 12.0, 480
  axis = np.linspace(-limit, limit, n, dtype=np.float32)
  grid = jnp.asarray(np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2))
  log_p = jax.jit(lambda p, g: flow_density.log_prob(model.apply, p, g))(params, grid)
  mass = float(np.sum(np.exp(np.asarray(log_p, np.float64))) * (axis[1] - axis[0]) ** 2)
  assert abs(mass - 1.0) < 0.005, mass


class NllLossTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_nll_at_init_is_the_standardized_gaussians(self):
    """Zero-initialised conditioners make a fresh RealNVP its ActNorm alone, whose NLL has a
    closed form: Σ_d [½ log 2π + ½ ((x_d - m_d)/s_d)² + log s_d] with the batch's m and s."""
    x = jnp.asarray(np.random.default_rng(6).normal(size=(64, 2)) * [3.0, 0.5] + 1.0, jnp.float32)
    model = flow_nets.Flow(flow_nets.vector_flow_layers("realnvp", 2, (8,)))
    params = model.init(jax.random.key(0), x)
    nll, terms = self.variant(lambda p, v: flow_density.nll_loss(model.apply, p, v))(params, x)
    m, s = np.asarray(x).mean(0), np.asarray(x).std(0)
    expected = np.mean(np.sum(0.5 * np.log(2 * np.pi) + 0.5 * ((np.asarray(x) - m) / s) ** 2 + np.log(s), -1))
    np.testing.assert_allclose(nll, expected, rtol=1e-5)
    np.testing.assert_allclose(terms["nll_bpd"], expected / (2 * np.log(2)), rtol=1e-5)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("flow_smoke")
  config = with_overrides(flows_2d.get_config("smoke"), **{**FEW_STEPS, "model.kind": "maf"})
  result = flows.train_and_evaluate(config, str(workdir))
  return workdir, result, config


def test_smoke_run_scores_test_points_and_its_density_has_mass_one(smoke_run):
  workdir, result, config = smoke_run
  m = result.eval_metrics
  assert m["num_examples"] == 200 and np.isfinite(m["nll"]) and m["nll_sem"] > 0
  assert 2.0 < m["data_nll"] < 4.0  # eight gaussians: entropy ≈ 2.84 nats
  assert abs(m["density_integral"] - 1.0) < 0.02
  assert (workdir / "samples" / "final_density.png").exists()
  assert (workdir / "samples" / "final_chain.png").exists()


def test_tools_sample_at_a_temperature_and_give_the_exact_log_density(smoke_run):
  workdir, result, config = smoke_run
  cold = sample_tool.sample_run(str(workdir), 64, temperature=0.5)
  warm = sample_tool.sample_run(str(workdir), 64)
  assert cold.shape == warm.shape == (64, 2) and np.all(np.isfinite(cold))
  assert np.std(cold) < np.std(warm)
  test_points = flows.load_dataset(config.data).test.arrays["x"]
  log_p, method = log_prob_tool.log_prob_run(str(workdir), test_points)
  assert log_p.shape == (200,) and "exact" in method
  # The tool's densities of the test split are the ones evaluation averaged.
  np.testing.assert_allclose(-log_p.mean(), result.eval_metrics["nll"], rtol=1e-5)


def test_a_checkpoint_of_another_flow_is_refused_and_kept(smoke_run):
  workdir, _, _ = smoke_run
  before = sorted(p.name for p in (workdir / "checkpoints").iterdir())
  config = with_overrides(flows_2d.get_config("smoke"), **{**FEW_STEPS, "model.kind": "realnvp"})
  with pytest.raises(WorkdirMismatchError, match="model.kind"):
    flows.train_and_evaluate(config, str(workdir))
  assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == before


@pytest.mark.parametrize("field,value,message", [
    ("model.kind", "glowy", "unknown model.kind 'glowy'"),
    ("model.num_bins", 1, "model.num_bins"),
    ("model.bound", 0.0, "model.bound"),
    ("data.name", "digits", "2-D"),
])
def test_config_mistakes_get_errors_that_say_what_to_fix(tmp_path, field, value, message):
  config = with_overrides(flows_2d.get_config("smoke"), **{field: value})
  with pytest.raises(ValueError, match=message):
    flows.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def test_non_finite_points_are_refused_with_the_row_named():
  x = np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, np.inf]], np.float32)
  with pytest.raises(ValueError, match=r"2 non-finite row\(s\) \(first: row 1\)"):
    flows.check_points(x, "my_points")


def test_glow_multi_scale_log_det_is_the_jacobians_and_it_inverts():
  """The whole multi-scale Glow (squeezes, steps, the factored-out half) on 4x4 images in
  float64: log-det against slogdet of the 16x16 Jacobian, and generate(flow(y)) = y."""
  with jax.enable_x64(True):
    y = jnp.asarray(np.random.default_rng(8).normal(size=(2, 4, 4, 1)))
    model = flow_nets.Glow((4, 4, 1), levels=2, steps=1, hidden_channels=4)
    params = model.init(jax.random.key(0), y)
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(9)
    params = jax.tree.unflatten(tree, [v + 0.2 * rng.normal(size=v.shape) for v in leaves])

    @jax.jit
    def run(params, y):
      z, log_det = model.apply(params, y)
      y_back, log_det_generate = model.apply(params, z, method="generate")
      jac = jax.vmap(jax.jacfwd(lambda v: model.apply(params, v.reshape(1, 4, 4, 1))[0][0]))(
          y.reshape(2, -1))
      return z, log_det, y_back, log_det_generate, jac

    z, log_det, y_back, log_det_generate, jac = map(np.asarray, run(params, y))
  assert z.shape == (2, 16) and np.all(np.abs(log_det) > 0.3)
  np.testing.assert_allclose(log_det, np.linalg.slogdet(jac)[1], rtol=1e-8)
  np.testing.assert_allclose(log_det_generate, -log_det, rtol=1e-8)
  np.testing.assert_allclose(y_back, np.asarray(y), atol=1e-9)


def test_dequantization_bound_is_below_the_bins_probability_and_close_to_it():
  """One pixel under a known density (y = logit(α + (1-2α)v) ~ N(0.3, 0.8²)): the mean of the
  uniform-dequantization bound over draws is at most log P(k) = log ∫_bin p_v (quadrature), and
  within the Jensen gap of a narrow bin of it; the offset D log 256 is in the bound."""
  mean, std = 0.3, 0.8
  flow_fn = lambda params, y: ((y - mean) / std, jnp.full(y.shape[:1], -np.log(std)))
  k = 140
  with jax.enable_x64(True):
    x = jnp.full((20_000, 1, 1, 1), k / 255.0)
    keys = jax.random.split(jax.random.key(0), 20_000)
    terms = deq.dequantized_nll_terms(flow_fn, deq.uniform_dequantizer, None, x, keys)
    v = jnp.linspace(k / 256, (k + 1) / 256, 20_001)
    y, log_dy = deq.logit_preprocess(v[:, None])
    p_v = np.exp(-0.5 * ((np.asarray(y[:, 0]) - mean) / std) ** 2) / (std * np.sqrt(2 * np.pi)) * np.exp(log_dy)
  log_p_bin = np.log(np.trapezoid(p_v, np.asarray(v)))
  bound = -np.asarray(terms["nll"])
  assert bound.mean() <= log_p_bin + 3 * bound.std() / np.sqrt(len(bound))
  assert bound.mean() > log_p_bin - 1e-4
  np.testing.assert_allclose(terms["nll_bpd"], np.asarray(terms["nll"]) / np.log(2), rtol=1e-12)


def test_image_smoke_run_with_variational_dequantization(tmp_path):
  config = with_overrides(flows_digits.get_config("variational,smoke"),
                          **{**FEW_STEPS, "model.levels": 1})  # the multi-scale Glow: above
  m = flows.train_and_evaluate(config, str(tmp_path)).eval_metrics
  assert m["num_examples"] == 64 and np.isfinite(m["nll_bpd"])
  np.testing.assert_allclose(m["nll_bpd"], m["nll"] / (64 * np.log(2)), rtol=1e-6)
  assert 0 < m["nll_bpd"] < 10  # below 8 bits/dim (uniform over the 256 values) + init slack
  assert (tmp_path / "samples" / "final_samples_by_temperature.png").exists()
  images = sample_tool.sample_run(str(tmp_path), 6, temperature=0.7)
  assert images.shape == (6, 8, 8, 1) and np.all((images >= 0) & (images <= 1))
  np.testing.assert_allclose(images * 255, np.round(images * 255), atol=1e-4)  # 8-bit values
  log_p, method = log_prob_tool.log_prob_run(str(tmp_path), images)
  # A bound on the log-probability of a discrete image: finite and at most 0.
  assert "dequantization bound" in method and np.all(np.isfinite(log_p)) and np.all(log_p <= 0)


@pytest.mark.parametrize("overrides,message", [
    ({"model.levels": 4}, r"8x8 images, which model.levels=4 squeezes cannot divide .* model.levels <= 3"),
    ({"model.dequantization": "gaussian"}, "unknown model.dequantization 'gaussian'"),
    ({"data.transforms": ("uniform_dequantize",)}, "set data.transforms=()"),
    ({"data.name": "two_moons"}, "does not fit this flow config"),
])
def test_image_config_mistakes_get_errors_that_say_what_to_fix(tmp_path, overrides, message):
  config = with_overrides(flows_digits.get_config("smoke"), **overrides)
  with pytest.raises(ValueError, match=message):
    flows.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()
