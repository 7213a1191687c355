"""Learned-SNR diffusion (VDM) and the diffusion networks, against truths that cannot be tuned:
the monotone schedule's end points and order, the variance gradient against autodiff of the
squared loss, and the schedule-invariance of the expected diffusion loss (VDM eq. 18) for
Gaussian data with its exact denoiser, against quadrature."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.diffusion import vdm
from gen_jax.nets import diffusion as nets, layers
from tests.helpers import adam_losses

GAMMA_MIN, GAMMA_MAX = -13.3, 5.0


def _redraw(tree, seed, scale):
  """Every leaf redrawn as scale · N(0, 1) (NumPy: one jitted draw per shape compiles slowly)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda leaf: jnp.asarray(scale * rng.standard_normal(leaf.shape), jnp.float32),
                      tree)


def _random_gamma_params(seed, scale):
  """LearnedGamma parameters with every weight redrawn at `scale` (signs included)."""
  net = nets.LearnedGamma(GAMMA_MIN, GAMMA_MAX, hidden=64)
  params = net.init(jax.random.key(seed), jnp.zeros((1,)))
  return net, _redraw(params, seed + 100, scale)


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 5.0), (2, 20.0)])
def test_learned_gamma_is_monotone_with_fixed_end_points(seed, scale):
  net, params = _random_gamma_params(seed, scale)
  t = jnp.linspace(0.0, 1.0, 2001)
  gamma = net.apply(params, t)
  np.testing.assert_allclose([gamma[0], gamma[-1]], [GAMMA_MIN, GAMMA_MAX], atol=1e-4)
  assert float(jnp.min(jnp.diff(gamma))) >= -1e-5
  # γ'(t) >= 0 as well (what the diffusion loss weights by).
  _, dg = vdm.gamma_and_derivative(lambda s: net.apply(params, s), t)
  assert float(jnp.min(dg)) >= -1e-4


def _toy_denoiser():
  net = nets.MLPDenoiser(hidden=16, num_layers=1, embedding_dim=8)
  x = jax.random.normal(jax.random.key(3), (6, 3))
  params = net.init(jax.random.key(4), x, jnp.zeros((6,)))
  # The output layer starts at zero; redraw every weight so ε̂ depends on its inputs (the
  # time embedding is float32, hence the tolerances below).
  return net, _redraw(params, 5, 0.3), x


def test_variance_gradient_equals_autodiff_of_the_mean_squared_diffusion_loss():
  """The schedule's gradient is ∇_η mean(L²) / (2 mean(L)), the network's ∇ mean(L)."""
  gamma_net, gamma_params = _random_gamma_params(7, 2.0)
  net, net_params, x = _toy_denoiser()
  t = jax.random.uniform(jax.random.key(8), (x.shape[0],))
  eps = jax.random.normal(jax.random.key(9), x.shape)

  def per_example(params, variance_gradient):
    return vdm.diffusion_loss(lambda s: gamma_net.apply(params["gamma"], s),
                              lambda z, g: net.apply(params["net"], z, g), x, t, eps,
                              variance_gradient)

  params = {"gamma": gamma_params, "net": net_params}
  with jax.enable_x64(True):
    params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
    value_v, grad_v = jax.jit(jax.value_and_grad(lambda p: jnp.mean(per_example(p, True))))(params)
    value_p, grad_plain = jax.jit(jax.value_and_grad(lambda p: jnp.mean(per_example(p, False))))(params)
    grad_sq = jax.jit(jax.grad(lambda p: jnp.mean(per_example(p, False) ** 2)
                               / (2 * jax.lax.stop_gradient(jnp.mean(per_example(p, False))))))(params)
  np.testing.assert_allclose(value_v, value_p, rtol=1e-12)
  chex.assert_trees_all_close(grad_v["net"], grad_plain["net"], rtol=1e-5, atol=1e-6)
  chex.assert_trees_all_close(grad_v["gamma"], grad_sq["gamma"], rtol=1e-5, atol=1e-6)
  # The schedule's gradient is not the plain one (it would be noise with fixed end points).
  gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(grad_v["gamma"]),
                                                            jax.tree.leaves(grad_plain["gamma"])))
  assert gap > 1e-3


def test_expected_diffusion_loss_depends_only_on_end_points():
  """x ~ N(0, s²) (1-D), exact ε̂ = E[ε | z_t] = σ z / (α² s² + σ²): E[L_diff] =
  ½ ∫_{γ_0}^{γ_1} α² s² / (α² s² + σ²) dγ whatever γ does in between."""
  s2 = 0.25
  grid = jnp.linspace(GAMMA_MIN, GAMMA_MAX, 200_001)
  a2 = jax.nn.sigmoid(-grid)
  integrand = a2 * s2 / (a2 * s2 + jax.nn.sigmoid(grid))
  exact = 0.5 * float(jnp.sum(0.5 * (integrand[1:] + integrand[:-1]) * jnp.diff(grid)))

  def eps_hat(z, g):
    a2, sig2 = jax.nn.sigmoid(-g), jax.nn.sigmoid(g)
    return jnp.sqrt(sig2)[:, None] * z / (a2 * s2 + sig2)[:, None]

  n = 400_000
  x = jnp.sqrt(s2) * jax.random.normal(jax.random.key(0), (n, 1))
  t = jax.random.uniform(jax.random.key(1), (n,))
  eps = jax.random.normal(jax.random.key(2), (n, 1))
  for seed, scale in ((0, 1.0), (1, 8.0)):
    net, params = _random_gamma_params(seed, scale)
    loss = vdm.diffusion_loss(lambda s: net.apply(params, s), eps_hat, x, t, eps, False)
    mean, sem = float(jnp.mean(loss)), float(jnp.std(loss) / np.sqrt(n))
    assert abs(mean - exact) < 4 * sem + 1e-3, (seed, mean, exact, sem)


def test_recon_decoder_is_a_distribution_and_sampler_returns_the_pixel_grid():
  z = jax.random.normal(jax.random.key(0), (2, 5))
  total = jax.vmap(lambda k: jnp.exp(-vdm.recon_nll(jnp.full((2, 5), k), z, jnp.asarray(-2.0))))(
      jnp.arange(vdm.PIXEL_VALUES))
  # Per dimension the probabilities sum to one, so the product over 5 dims of the sums is 1;
  # summing exp(-NLL) of constant images is a lower check: each term <= 1 and the per-dim sum is 1.
  assert float(jnp.max(total)) <= 1.0 + 1e-6
  per_dim = jax.nn.softmax(-0.5 * jnp.square(z[..., None] - vdm.pixel_grid()), axis=-1).sum(-1)
  np.testing.assert_allclose(per_dim, 1.0, rtol=1e-5)
  x = 2.0 * jnp.arange(vdm.PIXEL_VALUES) / 255.0 - 1.0
  np.testing.assert_array_equal(vdm.pixel_index(x), jnp.arange(vdm.PIXEL_VALUES))
  np.testing.assert_array_equal(vdm.nearest_bin(vdm.bin_centre(jnp.arange(256))), jnp.arange(256))


def test_unet_shapes_conditioning_and_errors():
  net = nets.UNet(channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  num_classes=3)
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))
  time = jnp.array([3.0, 700.0])
  labels = jnp.array([0, 3])
  # Random weights of the right shapes (initialising a U-Net under jit compiles slowly on CPU).
  params = _redraw(jax.eval_shape(net.init, jax.random.key(1), x, time, labels), 2, 0.2)
  apply = jax.jit(net.apply)
  out = apply(params, x, time, labels)
  chex.assert_shape(out, x.shape)
  other = apply(params, x, time, jnp.array([1, 3]))
  assert not np.allclose(out[0], other[0]) and np.allclose(out[1], other[1], atol=1e-6)
  with pytest.raises(ValueError, match="class-conditional"):
    jax.eval_shape(net.apply, params, x, time)
  with pytest.raises(ValueError, match="divisible"):
    jax.eval_shape(nets.UNet(channels=8, channel_mults=(1, 2, 2)).init, jax.random.key(0),
                   jnp.zeros((1, 6, 6, 1)), jnp.zeros((1,)))


def test_sinusoidal_embedding_matches_its_formula():
  emb = nets.sinusoidal_embedding(jnp.array([0.0, 5.0]), 8)
  freqs = np.exp(-np.log(nets.MAX_PERIOD) * np.arange(4) / 4)
  np.testing.assert_allclose(emb[1], np.concatenate([np.sin(5 * freqs), np.cos(5 * freqs)]), rtol=1e-6)
  np.testing.assert_allclose(emb[0], [0, 0, 0, 0, 1, 1, 1, 1])


def test_group_norm_is_flax_group_norm():
  """layers.GroupNorm against flax.linen.GroupNorm: the same parameters and initial values,
  outputs and gradients (parameters and input) within 1e-5 of their largest magnitude, the
  same losses over five Adam steps of a small conv net, and the U-Net's parameter tree
  unchanged (old checkpoints load)."""
  import flax.linen as nn

  class Net(nn.Module):  # conv -> norm -> silu -> conv
    norm: type

    @nn.compact
    def __call__(self, x):
      return nn.Conv(1, (3, 3))(nn.silu(self.norm(4)(nn.Conv(8, (3, 3))(x))))

  x = 1.5 + 2.0 * jax.random.normal(jax.random.key(0), (3, 6, 5, 8))
  target = jax.random.normal(jax.random.key(1), (3, 6, 5, 1))
  pair = (nn.GroupNorm(4), layers.GroupNorm(4))
  chex.assert_trees_all_equal(*[m.init(jax.random.key(2), x) for m in pair])
  params = {"params": {"scale": jax.random.normal(jax.random.key(3), (8,)),
                       "bias": jax.random.normal(jax.random.key(4), (8,))}}
  models = (Net(nn.GroupNorm), Net(layers.GroupNorm))
  init = models[0].init(jax.random.key(5), x)
  losses = lambda net: adam_losses(lambda p: jnp.mean((net.apply(p, x) - target) ** 2), init)

  @jax.jit
  def compare():
    out = [m.apply(params, x) for m in pair]
    grads = [jax.grad(lambda p, x: jnp.sum(jnp.sin(m.apply(p, x))), argnums=(0, 1))(params, x) for m in pair]
    return out, grads, [losses(n) for n in models]

  outputs, grads, (reference, new) = compare()
  for ref, got in [tuple(outputs), *zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1]))]:
    np.testing.assert_allclose(got, ref, atol=1e-5 * float(jnp.max(jnp.abs(ref))))
  assert reference[-1] < reference[0]
  np.testing.assert_allclose(new, reference, rtol=1e-5)
  unet_tree = lambda: jax.tree_util.tree_structure(jax.eval_shape(
      nets.UNet(8, (1, 2), 1, (4,)).init, jax.random.key(0), jnp.zeros((1, 8, 8, 1)), jnp.zeros(1)))
  new_tree = unet_tree()
  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(nets, "GroupNorm", nn.GroupNorm)
    assert unet_tree() == new_tree
