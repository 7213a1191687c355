"""The fully connected Boltzmann machine's Gibbs sampler against the exact distribution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.boltzmann import boltzmann_machine as bm

NUM_UNITS = 8
NUM_CHAINS = 40_000


def model(seed=0, scale=1.0):
  rng = np.random.default_rng(seed)
  w = bm.symmetrize(jnp.asarray(scale * rng.normal(size=(NUM_UNITS, NUM_UNITS)), jnp.float32))
  return {"W": w, "b": jnp.asarray(0.3 * rng.normal(size=NUM_UNITS), jnp.float32)}


def total_variation(p, q):
  return 0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum())


def histogram(states):
  return np.bincount(np.asarray(bm.state_index(states)), minlength=1 << NUM_UNITS) / len(states)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_gibbs_sampler_matches_the_exact_boltzmann_distribution(temperature):
  params = model()
  exact = np.asarray(bm.exact_distribution(params, temperature), np.float64)
  start = jnp.zeros((NUM_CHAINS, NUM_UNITS))
  states = jax.jit(bm.run_gibbs, static_argnums=3)(params, start, jax.random.key(0), 50, temperature)
  tv = total_variation(histogram(states), exact)
  # The bound: 1.5x the TV that an exact sampler with as many draws reaches on average.
  rng = np.random.default_rng(0)
  sampling_tv = np.mean([total_variation(rng.multinomial(NUM_CHAINS, exact / exact.sum()) / NUM_CHAINS, exact)
                         for _ in range(20)])
  assert tv < 1.5 * sampling_tv, (tv, sampling_tv)
  # A wrong temperature is detected by the same bound.
  wrong = np.asarray(bm.exact_distribution(params, temperature * 1.5))
  assert total_variation(histogram(states), wrong) > 3 * sampling_tv


def test_clamped_units_do_not_move_and_weights_stay_symmetric():
  params = model(1)
  s = jnp.asarray(np.random.default_rng(0).integers(0, 2, size=(64, NUM_UNITS)), jnp.float32)
  out = bm.run_gibbs(params, s, jax.random.key(1), 5, first_free_unit=3)
  np.testing.assert_array_equal(out[:, :3], s[:, :3])
  grads, hidden, chain = bm.phase_gradients(params, s[:, :3], s[:, 3:], s, jax.random.key(2))
  np.testing.assert_allclose(grads["W"], grads["W"].T)
  assert np.all(np.diag(np.asarray(grads["W"])) == 0)
  assert hidden.shape == (64, NUM_UNITS - 3) and chain.shape == s.shape


def test_learning_raises_the_exact_likelihood_of_the_data():
  params = model(2, scale=0.1)
  rng = np.random.default_rng(3)
  n_visible = 5
  data = jnp.asarray((rng.random((200, n_visible)) < np.array([0.9, 0.1, 0.8, 0.2, 0.5])).astype(np.float32))

  def exact_log_likelihood(p):
    probs = bm.exact_distribution(p)
    visible_marginal = jnp.zeros(1 << n_visible).at[bm.state_index(bm.all_states(NUM_UNITS)[:, :n_visible])].add(probs)
    return float(jnp.mean(jnp.log(visible_marginal[bm.state_index(data)])))

  before = exact_log_likelihood(params)
  hidden, chain = jnp.zeros((200, NUM_UNITS - n_visible)), jnp.zeros((500, NUM_UNITS))
  step = jax.jit(bm.phase_gradients, static_argnums=5)
  for i in range(200):
    grads, hidden, chain = step(params, data, hidden, chain, jax.random.key(i), 1)
    params = jax.tree.map(lambda p, g: p + 0.05 * g, params, grads)
  assert exact_log_likelihood(params) > before + 0.3, (before, exact_log_likelihood(params))
