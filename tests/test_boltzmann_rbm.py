"""RBM and Hopfield math against brute-force enumeration and exact gradients."""

import itertools

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.special import logsumexp

from gen_jax.boltzmann import hopfield, rbm


def random_rbm(n_visible, n_hidden, seed=0, scale=1.0, dtype=np.float64):
  rng = np.random.default_rng(seed)
  return {"W": jnp.asarray(scale * rng.normal(size=(n_visible, n_hidden)), dtype),
          "b": jnp.asarray(0.5 * rng.normal(size=n_visible), dtype),
          "c": jnp.asarray(0.5 * rng.normal(size=n_hidden), dtype)}


def all_states(n):
  return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def brute_force_log_z(params):
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  v, h = all_states(p["W"].shape[0]), all_states(p["W"].shape[1])
  neg_energy = (v @ p["W"] @ h.T) + (v @ p["b"])[:, None] + (h @ p["c"])[None, :]
  return logsumexp(neg_energy)


@pytest.mark.parametrize("n_visible,n_hidden", [(5, 3), (3, 6), (7, 7)])
def test_log_partition_exact_matches_brute_force(n_visible, n_hidden):
  with jax.enable_x64(True):
    params = random_rbm(n_visible, n_hidden, seed=n_visible)
    assert float(rbm.log_partition_exact(params)) == pytest.approx(brute_force_log_z(params), abs=1e-10)


def test_log_partition_exact_handles_twenty_units_in_blocks():
  with jax.enable_x64(True):
    params = random_rbm(20, 22, seed=1, scale=0.1)
    # Enumerating the 20 visible units (2^20 configurations, in blocks) must equal
    # enumerating the 20 hidden units of the transposed model, which swaps the layers.
    swapped = {"W": params["W"].T, "b": params["c"], "c": params["b"]}
    by_visible = float(rbm.log_partition_exact(params))
    assert np.isfinite(by_visible)
    assert by_visible == pytest.approx(float(rbm.log_partition_exact(swapped)), abs=1e-8)


def test_free_energy_sums_out_the_hidden_units():
  with jax.enable_x64(True):
    params = random_rbm(4, 5, seed=2)
    v, h = jnp.asarray(all_states(4)), jnp.asarray(all_states(5))
    brute = jax.nn.logsumexp(-jax.vmap(lambda hh: rbm.energy(params, v, jnp.broadcast_to(hh, (16, 5))))(h), axis=0)
    np.testing.assert_allclose(-rbm.free_energy(params, v), brute, atol=1e-10)
    log_z = rbm.log_partition_exact(params)
    assert float(jnp.sum(jnp.exp(rbm.log_prob(params, v, log_z)))) == pytest.approx(1.0, abs=1e-10)


class ConditionalsTest(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_conditionals_match_enumeration(self):
    params = random_rbm(4, 3, seed=3, dtype=np.float32)
    v = jnp.asarray(all_states(4), jnp.float32)
    probs = self.variant(rbm.hidden_probs)(params, v)
    h = jnp.asarray(all_states(3), jnp.float32)
    joint = jnp.exp(-jax.vmap(lambda hh: rbm.energy(params, v, jnp.broadcast_to(hh, (16, 3))))(h)).T
    want = (joint @ h) / joint.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, want, rtol=1e-5)
    v_probs = self.variant(rbm.visible_probs)(params, h)
    joint_v = jnp.exp(-jax.vmap(lambda vv: rbm.energy(params, jnp.broadcast_to(vv, (8, 4)), h))(v)).T
    np.testing.assert_allclose(v_probs, (joint_v @ v) / joint_v.sum(1, keepdims=True), rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_free_energy_runs_and_vmaps(self):
    params = random_rbm(6, 4, dtype=np.float32)
    v = jnp.asarray(all_states(6)[:8], jnp.float32)
    f = self.variant(rbm.free_energy)(params, v)
    chex.assert_shape(f, (8,))
    chex.assert_type(f, jnp.float32)
    stacked = jax.vmap(rbm.free_energy, in_axes=(None, 0))(params, v.reshape(2, 4, 6))
    np.testing.assert_allclose(stacked.reshape(-1), f, rtol=1e-6)


def test_cd_gradients_approach_the_exact_gradient_as_k_grows():
  params = random_rbm(6, 4, seed=4, scale=1.5, dtype=np.float32)
  data = jnp.asarray(np.random.default_rng(0).integers(0, 2, size=(20000, 6)), jnp.float32)
  exact = rbm.exact_log_likelihood_gradient(params, data)
  errors = {}
  for k in (1, 3, 30):
    grads, _ = jax.jit(lambda p, v, key: rbm.cd_gradients(p, v, key, k))(params, data, jax.random.key(k))
    errors[k] = float(jnp.sqrt(sum(jnp.sum((grads[n] - exact[n]) ** 2) for n in grads)))
  assert errors[1] > errors[3] > errors[30], errors
  assert errors[30] < 0.25 * errors[1], errors


def train_digits_rbm(n_hidden=16, steps=1500, seed=0):
  from gen_jax.data import load_dataset
  data = load_dataset(ml_collections.ConfigDict({"name": "digits", "data_dir": ""}))
  x = (data.train.arrays["x"].reshape(len(data.train), -1) / 255.0 > 0.5).astype(np.float32)
  params = rbm.init_params(jax.random.key(seed), x.shape[1], n_hidden,
                           visible_bias=rbm.base_rate_bias(jnp.asarray(x)))

  @jax.jit
  def step(params, chain, i):
    batch = jnp.asarray(x)[jax.random.permutation(jax.random.fold_in(jax.random.key(seed), i), len(x))[:100]]
    grads, chain = rbm.cd_gradients(params, batch, jax.random.fold_in(jax.random.key(seed + 1), i), 1, chain)
    return jax.tree.map(lambda p, g: p + 0.05 * g, params, grads), chain

  chain = jnp.asarray(x[:100])
  for i in range(steps):
    params, chain = step(params, chain, i)
  return params, x


def test_ais_is_within_a_tenth_of_a_nat_of_exact_log_z_on_a_digits_rbm():
  params, x = train_digits_rbm()
  exact = float(rbm.log_partition_exact(params))
  estimate, std_err = rbm.ais_log_partition(params, jax.random.key(0), num_chains=100,
                                            base_visible_bias=rbm.base_rate_bias(jnp.asarray(x)))
  assert abs(float(estimate) - exact) < 0.1, (float(estimate), exact, float(std_err))
  assert 0 <= float(std_err) < 0.1
  # The trained model is far from the base rate: log Z moved a long way from log Z_A.
  assert rbm.standard_ais_betas().shape[0] > 14_000


def test_pseudo_likelihood_and_reconstruction_monitor_are_finite():
  params = random_rbm(8, 5, dtype=np.float32)
  v = jnp.asarray(all_states(8)[:32], jnp.float32)
  pl = rbm.pseudo_log_likelihood(params, v, jax.random.key(0))
  chex.assert_shape(pl, (32,))
  assert np.all(np.asarray(pl) <= 0)
  assert float(rbm.reconstruction_error(params, v)) > 0


def test_hebbian_weights_follow_the_seed_formula():
  patterns = jnp.asarray(np.random.default_rng(0).choice([-1.0, 1.0], size=(3, 10)))
  w = hopfield.hebbian_weights(patterns)
  want = np.asarray(patterns).T @ np.asarray(patterns) / 10
  np.fill_diagonal(want, 0)
  np.testing.assert_allclose(w, want, rtol=1e-6)


def test_asynchronous_recall_never_raises_energy_and_recovers_patterns_at_low_load():
  n, p = 200, 10  # load 0.05 ≪ 0.138
  patterns = jnp.asarray(np.random.default_rng(1).choice([-1.0, 1.0], size=(p, n)), jnp.float32)
  w = hopfield.hebbian_weights(patterns)
  flips = jax.random.bernoulli(jax.random.key(0), 0.15, patterns.shape)
  noisy = jnp.where(flips, -patterns, patterns)
  energies = [hopfield.energy(w, noisy)]
  state = noisy
  for sweep in range(3):
    state = hopfield.recall(w, state, jax.random.fold_in(jax.random.key(1), sweep), 1)
    energies.append(hopfield.energy(w, state))
  assert all(np.all(np.asarray(b) <= np.asarray(a) + 1e-4) for a, b in zip(energies, energies[1:]))
  overlaps = np.diag(np.asarray(hopfield.overlap(state, patterns)))
  assert np.all(overlaps == 1.0), overlaps


def _random_params(key, n_visible, n_hidden, scale, dtype=jnp.float64):
  k1, k2, k3 = jax.random.split(jax.random.key(key), 3)
  return {"W": scale * jax.random.normal(k1, (n_visible, n_hidden), dtype),
          "b": scale * jax.random.normal(k2, (n_visible,), dtype),
          "c": scale * jax.random.normal(k3, (n_hidden,), dtype)}


def test_gaussian_log_partition_matches_quadrature():
  """Z = ∫ e^{-F(v)} dv by a 2-D Riemann sum (the integrand is negligible beyond ±12)."""
  with jax.enable_x64():
    params = _random_params(0, 2, 3, 0.8)
    grid = jnp.linspace(-12.0, 12.0, 1201, dtype=jnp.float64)
    v = jnp.stack(jnp.meshgrid(grid, grid), -1).reshape(-1, 2)
    cell = (grid[1] - grid[0]) ** 2
    quadrature = float(jax.nn.logsumexp(-rbm.gaussian_free_energy(params, v)) + jnp.log(cell))
    assert abs(float(rbm.gaussian_log_partition_exact(params)) - quadrature) < 1e-6


def test_gaussian_gibbs_chains_reach_the_exact_visible_moments():
  """E[v] = Σ_h p(h)(b + Wh) and E|v|² = Σ_h p(h)(|b + Wh|² + D), p(h) ∝ e^{cᵀh + ½|b + Wh|²}."""
  params = _random_params(1, 3, 4, 0.6, jnp.float32)
  h = jnp.asarray(list(itertools.product([0.0, 1.0], repeat=4)))
  means = h @ params["W"].T + params["b"]
  p_h = jax.nn.softmax(h @ params["c"] + 0.5 * jnp.sum(means ** 2, -1))
  exact_mean = p_h @ means
  exact_square = p_h @ (jnp.sum(means ** 2, -1) + 3)
  chains = rbm.gibbs_chain(params, jnp.zeros((20_000, 3)), jax.random.key(2), 50, rbm.gaussian_gibbs_step)
  # 20,000 nearly independent chains: standard errors ≈ 1/√20000 · std ≈ 0.01.
  np.testing.assert_allclose(chains.mean(0), exact_mean, atol=0.05)
  np.testing.assert_allclose(jnp.mean(jnp.sum(chains ** 2, -1)), exact_square, rtol=0.03)


def test_replicated_rbm_doubles_the_up_and_down_passes():
  params = _random_params(3, 5, 4, 0.5, jnp.float32)
  v = (jax.random.uniform(jax.random.key(4), (6, 5)) < 0.5).astype(jnp.float32)
  h = (jax.random.uniform(jax.random.key(5), (6, 4)) < 0.5).astype(jnp.float32)
  doubled_v = rbm.replicate(params, visible_copies=2)
  np.testing.assert_allclose(rbm.hidden_probs(doubled_v, jnp.tile(v, (1, 2))),
                             jax.nn.sigmoid(params["c"] + 2 * v @ params["W"]), rtol=1e-5)
  np.testing.assert_allclose(rbm.visible_probs(doubled_v, h)[:, :5], rbm.visible_probs(params, h), rtol=1e-5)
  doubled_h = rbm.replicate(params, hidden_copies=2)
  np.testing.assert_allclose(rbm.visible_probs(doubled_h, jnp.tile(h, (1, 2))),
                             jax.nn.sigmoid(params["b"] + 2 * h @ params["W"].T), rtol=1e-5)
  # Gradients through the tied copies reach the shared weights: d/dW of F summed over blocks.
  grad = jax.grad(lambda p: jnp.sum(rbm.free_energy(rbm.replicate(p, 2), jnp.tile(v, (1, 2)))))(params)
  want = -2 * v.T @ jax.nn.sigmoid(params["c"] + 2 * v @ params["W"])
  np.testing.assert_allclose(grad["W"], want, rtol=1e-4, atol=1e-5)
