"""Autoencoder family: corruption and sparsity math, every model's loss under jit/vmap,
HVAE bound ordering, network shapes and input checks."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from experiments.configs import vae as vae_config
from gen_jax import nets
from gen_jax.autoencoders import ae, vae
from gen_jax.nets import layers
from gen_jax.tasks import autoencoders as task_lib
from tests.helpers import adam_losses


class CorruptionTest(parameterized.TestCase):

  @parameterized.parameters(0.1, 0.5)
  def test_masking_drops_the_requested_fraction(self, level):
    x = jnp.ones((50, 400))
    out = ae.corrupt("masking", jax.random.key(0), x, level)
    assert float((out == 0).mean()) == pytest.approx(level, abs=0.01)

  def test_salt_and_pepper_hits_the_requested_fraction_half_each_way(self):
    x = jnp.full((50, 400), 0.5)
    out = np.asarray(ae.corrupt("salt_and_pepper", jax.random.key(1), x, 0.3))
    assert (out != 0.5).mean() == pytest.approx(0.3, abs=0.01)
    assert (out == 1).mean() == pytest.approx(0.15, abs=0.01)
    symmetric = np.asarray(ae.corrupt("salt_and_pepper", jax.random.key(1), x, 0.3, "symmetric"))
    assert set(np.unique(symmetric)) == {-1.0, 0.5, 1.0}

  def test_gaussian_corruption_has_the_requested_scale(self):
    out = ae.corrupt("gaussian", jax.random.key(2), jnp.zeros((100, 1000)), 0.25)
    assert float(out.std()) == pytest.approx(0.25, rel=0.01)

  def test_corruption_is_keyed_per_example(self):
    x = jnp.full((6, 20), 0.5)
    keys = jax.random.split(jax.random.key(3), 6)
    whole = ae.corrupt("masking", keys, x, 0.5)
    part = ae.corrupt("masking", keys[2:4], x[2:4], 0.5)
    np.testing.assert_array_equal(whole[2:4], part)

  def test_unknown_corruption_is_named(self):
    with pytest.raises(ValueError, match="salt_and_pepper"):
      ae.corrupt("salt", jax.random.key(0), jnp.zeros((1, 2)), 0.1)


def test_sparsity_penalty_closed_form():
  rho = 0.05
  code = jnp.full((10, 4), rho)
  assert float(ae.sparsity_penalty(code, rho)) == pytest.approx(0.0, abs=1e-6)
  code = jnp.full((10, 4), 0.2)
  want = 4 * (rho * np.log(rho / 0.2) + (1 - rho) * np.log((1 - rho) / 0.8))
  assert float(ae.sparsity_penalty(code, rho)) == pytest.approx(want, rel=1e-5)


def model_config(kind, network="mlp"):
  config = vae_config.get_config("smoke")
  with config.unlocked():
    config.model.kind = kind
    config.model.network = network
    config.model.num_samples = 3 if kind == "iwae" else 1
    if network == "conv":
      config.model.sizes = (8, 16)
  return config


class _Digits:
  element_shape = (8, 8, 1)


def binary_batch(n=8, shape=(8, 8, 1), seed=0):
  x = jax.random.bernoulli(jax.random.key(seed), 0.3, (n, *shape)).astype(jnp.float32)
  return {"x": x, "index": jnp.arange(n, dtype=jnp.uint32), "id": jnp.arange(n, dtype=jnp.uint32),
          "label": jnp.zeros(n, jnp.int32)}


class LossesTest(chex.TestCase, parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.parameters(*sorted(task_lib.MODEL_KINDS))
  def test_every_loss_runs_under_jit_and_vmap(self, kind):
    self._check_loss(self.variant, kind, "mlp")

  @chex.variants(with_jit=True)
  @parameterized.parameters("ae", "vae")
  def test_conv_losses_run_under_jit_and_vmap(self, kind):
    self._check_loss(self.variant, kind, "conv")

  def _check_loss(self, variant, kind, network):
    task = task_lib.make_task(model_config(kind, network), _Digits())
    batch = binary_batch()
    params = task.init(jax.random.key(0), batch["x"][:1])
    loss_fn = variant(task.loss_fn)
    loss, terms = loss_fn(params, batch, jax.random.key(1))
    chex.assert_shape(loss, ())
    chex.assert_tree_all_finite((loss, terms))
    assert all(jnp.shape(v) == () for v in terms.values())
    # vmap over a leading axis of micro-batches, with one key each.
    stacked = jax.tree.map(lambda v: v.reshape(2, 4, *v.shape[1:]), batch)
    losses, _ = jax.vmap(loss_fn, in_axes=(None, 0, 0))(params, stacked,
                                                        jax.random.split(jax.random.key(2), 2))
    chex.assert_shape(losses, (2,))
    grads = jax.grad(lambda p: loss_fn(p, batch, jax.random.key(1))[0])(params)
    chex.assert_tree_all_finite(grads)


def test_vae_loss_is_minus_the_elbo_and_terms_add_up():
  task = task_lib.make_task(model_config("vae"), _Digits())
  batch = binary_batch()
  params = task.init(jax.random.key(0), batch["x"][:1])
  loss, terms = task.loss_fn(params, batch, jax.random.key(1))
  assert float(loss) == pytest.approx(-float(terms["elbo"]), rel=1e-6)
  assert float(terms["elbo"]) == pytest.approx(float(terms["log_px_z"] - terms["kl"]), rel=1e-5)
  assert float(terms["kl"]) >= 0


def test_hvae_bounds_are_ordered():
  config = model_config("hvae")
  model = task_lib.MODEL_KINDS["hvae"].build(config.model, (8, 8, 1))
  x = binary_batch(n=4)["x"]
  params = model.init(jax.random.key(0), x[:1], jax.random.key(1))
  key = jax.random.key(2)
  elbo = vae.elbo(model.apply, params, x, key, num_samples=500)
  iwae = vae.iwae_bound(model.apply, params, x, key, num_samples=500)
  assert np.all(np.asarray(iwae) > np.asarray(elbo))


@pytest.mark.parametrize("shape", [(28, 28, 1), (8, 8, 1), (32, 32, 3)])
def test_conv_decoder_matches_the_image_shape(shape):
  model = nets.VAE(shape, 4, "conv", (8, 16), "gaussian")
  x = jnp.zeros((2, *shape))
  params = model.init(jax.random.key(0), x, jax.random.key(1))
  decoded = model.apply(params, jnp.zeros((2, 4)), method="decode")
  assert decoded.shape == (2, *shape, 2)


@pytest.mark.parametrize("height,width", [(4, 4), (5, 3)])
def test_subpixel_upsampling_is_the_transposed_convolution(height, width):
  """SubpixelConvTranspose and nn.ConvTranspose(3x3, stride 2, SAME) have the same parameters
  and initialisation and compute the same outputs and gradients (float32, within 1e-5)."""
  x = jax.random.normal(jax.random.key(0), (2, height, width, 3))
  modules = (nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding="SAME"), layers.SubpixelConvTranspose(4))
  inits = [m.init(jax.random.key(1), x) for m in modules]
  chex.assert_trees_all_equal(*inits)
  params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), inits[0])

  @jax.jit
  def outputs_and_gradients(params, x):
    def result(module):
      loss = lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
      return module.apply(params, x), jax.grad(loss, argnums=(0, 1))(params, x)
    return [result(m) for m in modules]

  reference, subpixel = outputs_and_gradients(params, x)
  assert reference[0].shape == (2, 2 * height, 2 * width, 4)
  chex.assert_trees_all_close(subpixel, reference, atol=1e-5, rtol=1e-5)


def test_subpixel_decoder_trains_as_the_transposed_convolution_decoder():
  """The conv decoder with sub-pixel upsampling and with nn.ConvTranspose: the same initial
  parameters and the same losses over five Adam steps of a regression (within 1e-5)."""
  decoders = [layers.ConvDecoder((8, 16), (8, 8, 1, 2), upsample=u) for u in ("transposed", "subpixel")]
  z, target = jax.random.normal(jax.random.key(0), (4, 3)), jax.random.normal(jax.random.key(1), (4, 8, 8, 1, 2))
  inits = [d.init(jax.random.key(2), z) for d in decoders]
  chex.assert_trees_all_equal(*inits)

  @jax.jit
  def losses(params):
    return [adam_losses(lambda p: jnp.mean((d.apply(p, z) - target) ** 2), params) for d in decoders]

  transposed, subpixel = losses(inits[0])
  assert transposed[-1] < transposed[0]
  np.testing.assert_allclose(subpixel, transposed, rtol=1e-5)


def test_model_rejects_a_wrong_image_shape_with_a_clear_error():
  model = nets.VAE((28, 28, 1), 4)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))
  with pytest.raises(ValueError, match=r"VAE expects images of shape \(28, 28, 1\) but got images of shape \(8, 8, 1\)"):
    vae.elbo(model.apply, params, jnp.zeros((2, 8, 8, 1)), jax.random.key(0))


def test_model_rejects_integer_pixels_with_a_clear_error():
  model = nets.VAE((8, 8, 1), 4)
  params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jax.random.key(1))
  with pytest.raises(TypeError, match="floating-point images but got dtype uint8"):
    model.apply(params, jnp.zeros((2, 8, 8, 1), jnp.uint8), jax.random.key(0))


def test_gaussian_likelihood_needs_symmetric_data():
  from gen_jax import distributions
  obs = distributions.observation_model("gaussian")
  with pytest.raises(ValueError, match="scale_to_symmetric"):
    task_lib.check_data_range(np.random.default_rng(0).random((4, 8)), obs, ("uniform_dequantize",))


def test_unknown_model_kind_is_named():
  config = model_config("vae")
  with config.unlocked():
    config.model.kind = "vea"
  with pytest.raises(ValueError, match=r"unknown model.kind 'vea'"):
    task_lib.make_task(config, _Digits())


@pytest.mark.parametrize("likelihood", ["gaussian", "discretized_gaussian"])
def test_continuous_decoders_train_on_dequantized_symmetric_data(likelihood, tmp_path):
  from gen_jax.data import load_dataset
  from gen_jax.training import train
  config = model_config("vae")
  with config.unlocked():
    config.model.likelihood = likelihood
    config.data.transforms = ("uniform_dequantize", "scale_to_symmetric")
    config.train.num_steps = 20
    config.train.progress_bar = False
    config.eval.iwae_samples = 0
  dataset = load_dataset(config.data)
  result = train(task_lib.make_task(config, dataset), config, str(tmp_path), dataset)
  records = [r for r in map(__import__("json").loads, open(tmp_path / "metrics.jsonl")) if "loss" in r]
  assert records[-1]["loss"] < records[0]["loss"]
  assert np.isfinite(result.eval_metrics["elbo"])
