"""gen_jax.keys: the unrolled Threefry draws equal jax.random's bit for bit (so swapping them in
changes no result), under jit and vmap, for 32- and 64-bit floats; per-example keys."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import keys

SHAPES = [(), (5,), (3, 4), (2, 3, 5), (7, 33)]


def key_words(k):
  return np.asarray(jax.random.key_data(k))


class TestSameDrawsAsJaxRandom(chex.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_bits_uniform_bernoulli(self):
    key = jax.random.key(7)
    p = jax.random.uniform(jax.random.key(1), (7, 33))
    for shape in SHAPES:
      bits = self.variant(keys.random_bits, static_argnums=1)(key, shape)
      np.testing.assert_array_equal(bits, jax.random.bits(key, shape))
      u = self.variant(keys.uniform, static_argnums=1)(key, shape)
      np.testing.assert_array_equal(u, jax.random.uniform(key, shape))
    np.testing.assert_array_equal(self.variant(keys.bernoulli)(key, p), jax.random.bernoulli(key, p))
    scalar_p = self.variant(lambda k: keys.bernoulli(k, 0.3, (4, 9)))(key)
    np.testing.assert_array_equal(scalar_p, jax.random.bernoulli(key, 0.3, (4, 9)))

  def test_vmapped_per_example_keys_and_legacy_keys(self):
    row_keys = keys.fold_in_indices(jax.random.key(3), jnp.arange(10))
    p = jax.random.uniform(jax.random.key(1), (10, 21))
    want = jax.vmap(jax.random.bernoulli)(row_keys, p)
    np.testing.assert_array_equal(jax.jit(jax.vmap(keys.bernoulli))(row_keys, p), want)
    legacy = jax.random.PRNGKey(3)
    np.testing.assert_array_equal(keys.uniform(legacy, (6,)), jax.random.uniform(legacy, (6,)))

  def test_float64_and_64_bit_words(self):
    key = jax.random.key(5)
    with jax.enable_x64(True):
      np.testing.assert_array_equal(keys.uniform(key, (50,), jnp.float64),
                                    jax.random.uniform(key, (50,), jnp.float64))
      np.testing.assert_array_equal(keys.random_bits(key, (50,), 64),
                                    jax.random.bits(key, (50,), jnp.uint64))
      p = jax.random.uniform(jax.random.key(1), (40,), jnp.float64)
      np.testing.assert_array_equal(keys.bernoulli(key, p), jax.random.bernoulli(key, p))

  def test_fold_in_over_indices_and_over_a_batch_of_keys(self):
    key = jax.random.key(11)
    indices = jnp.array([0, 1, 5, 2**31 + 7, 2**32 - 1], jnp.uint32)
    np.testing.assert_array_equal(key_words(keys.fold_in_indices(key, indices)),
                                  key_words(jax.vmap(jax.random.fold_in, (None, 0))(key, indices)))
    batch = jax.random.split(key, 7)
    np.testing.assert_array_equal(key_words(keys.fold_in(batch, 3)),
                                  key_words(jax.vmap(jax.random.fold_in, (0, None))(batch, 3)))
    np.testing.assert_array_equal(key_words(jax.jit(keys.fold_in)(key, 9)),
                                  key_words(jax.random.fold_in(key, 9)))

  def test_other_key_implementations_fall_back_to_jax_random(self):
    key = jax.random.key(1, impl="rbg")
    np.testing.assert_array_equal(keys.uniform(key, (8,)), jax.random.uniform(key, (8,)))
    np.testing.assert_array_equal(
        key_words(keys.fold_in(key, jnp.arange(3))),
        key_words(jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(3))))


def test_bernoulli_frequencies_match_p():
  """Beyond equality with jax.random: 200,000 draws at p = 0.1, 0.5, 0.9 are within 5 binomial
  standard errors of p."""
  p = jnp.repeat(jnp.array([0.1, 0.5, 0.9]), 200_000).reshape(3, -1)
  freq = np.asarray(keys.bernoulli(jax.random.key(0), p)).mean(1)
  se = np.sqrt(np.array([0.09, 0.25, 0.09]) / 200_000)
  assert np.all(np.abs(freq - [0.1, 0.5, 0.9]) < 5 * se), freq


def test_example_keys_checks_the_batch():
  with pytest.raises(ValueError, match="expected one key or 4 per-example keys"):
    keys.example_keys(jax.random.split(jax.random.key(0), 3), 4)
  with pytest.raises(ValueError, match="fold_in_indices takes one key"):
    keys.fold_in_indices(jax.random.split(jax.random.key(0), 3), jnp.arange(3))
