"""DBN, DBM and SBN bounds against exact enumeration on tiny models."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from gen_jax.boltzmann import dbm, dbn, rbm, sbn


def states(n):
  return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def random(shape, rng, scale=1.0):
  return jnp.asarray(scale * rng.normal(size=shape), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


def tiny_dbn(rng):
  return [{"W": random((5, 4), rng), "b": random(5, rng, 0.5), "c": random(4, rng, 0.5)},
          {"W": random((4, 3), rng), "b": random(4, rng, 0.5), "c": random(3, rng, 0.5)}]


def exact_dbn_log_prob(layers, v):
  bottom, top = layers
  h1 = jnp.asarray(states(4))
  log_top = -rbm.free_energy(top, h1) - rbm.log_partition_exact(top)
  log_v_given_h = jax.vmap(lambda h: (v * (bottom["b"] + h @ bottom["W"].T)
                                      - jax.nn.softplus(bottom["b"] + h @ bottom["W"].T)).sum(-1))(h1)
  return jax.nn.logsumexp(log_top[:, None] + log_v_given_h, axis=0)


def test_dbn_bound_is_below_log_p_and_importance_estimate_reaches_it():
  with jax.enable_x64(True):
    layers = tiny_dbn(np.random.default_rng(0))
    v = jnp.asarray(states(5)[::3])
    exact = np.asarray(exact_dbn_log_prob(layers, v))
    log_z_top = rbm.log_partition_exact(layers[-1])
    bound = np.asarray(dbn.log_prob_bound(layers, v, jax.random.key(0), log_z_top, num_samples=4000))
    assert np.all(bound < exact), bound - exact
    estimate = np.asarray(dbn.log_prob_importance(layers, v, jax.random.key(1), log_z_top, 4000))
    np.testing.assert_allclose(estimate, exact, atol=0.05)


def test_dbn_samples_have_the_right_shape_and_range():
  layers = [{k: jnp.asarray(v, jnp.float32) for k, v in layer.items()} for layer in tiny_dbn(np.random.default_rng(1))]
  samples, probs = dbn.sample(layers, jax.random.key(0), 16, 20)
  assert samples.shape == (16, 5) and set(np.unique(samples)) <= {0.0, 1.0}
  assert np.all((np.asarray(probs) >= 0) & (np.asarray(probs) <= 1))


def tiny_dbm(rng, scale=1.0):
  return {"W1": random((4, 3), rng, scale), "W2": random((3, 3), rng, scale), "b": random(4, rng, 0.5),
          "c1": random(3, rng, 0.5), "c2": random(3, rng, 0.5)}


def brute_force_dbm(params):
  p = {k: np.asarray(v) for k, v in params.items()}
  v, h1, h2 = states(4), states(3), states(3)
  neg_e = (np.einsum("ai,ij,bj->ab", v, p["W1"], h1)[:, :, None] + np.einsum("bi,ij,cj->bc", h1, p["W2"], h2)[None]
           + (v @ p["b"])[:, None, None] + (h1 @ p["c1"])[None, :, None] + (h2 @ p["c2"])[None, None, :])
  log_z = logsumexp(neg_e)
  return log_z, logsumexp(neg_e, axis=(1, 2)) - log_z


def test_dbm_exact_log_z_and_ais_match_brute_force():
  with jax.enable_x64(True):
    params = tiny_dbm(np.random.default_rng(2))
    log_z, _ = brute_force_dbm(params)
    assert float(dbm.log_partition_exact(params)) == pytest.approx(log_z, abs=1e-10)
    estimate, std_err = dbm.ais_log_partition(params, jax.random.key(0), num_chains=200,
                                              betas=np.linspace(0, 1, 2000))
    assert abs(float(estimate) - log_z) < max(0.05, 4 * float(std_err))


def test_dbm_variational_bound_is_below_log_p_and_mean_field_helps():
  with jax.enable_x64(True):
    params = tiny_dbm(np.random.default_rng(3))
    log_z, log_p = brute_force_dbm(params)
    v = jnp.asarray(states(4))
    bound = np.asarray(dbm.variational_lower_bound(params, v, log_z, num_iters=30))
    assert np.all(bound <= log_p + 1e-9)
    assert np.mean(bound) > np.mean(np.asarray(dbm.variational_lower_bound(params, v, log_z, num_iters=0)))


def test_dbm_pretrained_rbms_combine_with_averaged_middle_biases():
  rng = np.random.default_rng(4)
  bottom = {"W": random((4, 3), rng), "b": random(4, rng), "c": random(3, rng)}
  top = {"W": random((3, 2), rng), "b": random(3, rng), "c": random(2, rng)}
  params = dbm.from_pretrained_rbms(bottom, top)
  np.testing.assert_allclose(params["c1"], 0.5 * (bottom["c"] + top["b"]))
  grads, chains = dbm.gradients(params, jnp.asarray(states(4)[:8]),
                                (jnp.zeros((5, 4)), jnp.zeros((5, 3)), jnp.zeros((5, 2))), jax.random.key(0))
  assert {k: g.shape for k, g in grads.items()} == {k: p.shape for k, p in params.items()}


def test_dbm_learning_rule_is_the_mean_field_minus_chain_statistics():
  """dbm.gradients (−∇ of the trainer's dbm.pcd_loss) equals the update of Salakhutdinov &
  Hinton written out: <v μ1ᵀ>_data − <ṽ h̃1ᵀ>_chains, ... with μ by mean field and the chains
  after their Gibbs sweep."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(7)
    params = {"W1": random((4, 3), rng), "W2": random((3, 2), rng), "b": random(4, rng),
              "c1": random(3, rng), "c2": random(2, rng)}
    v = jnp.asarray(states(4)[:8])
    start = tuple(jnp.asarray((rng.random((6, n)) < 0.5).astype(np.float64)) for n in (4, 3, 2))
    grads, (cv, ch1, ch2) = dbm.gradients(params, v, start, jax.random.key(3), mean_field_iters=5,
                                          gibbs_steps=2)
    mu1, mu2 = dbm.mean_field(params, v, 5)
    expected = {"W1": v.T @ mu1 / 8 - cv.T @ ch1 / 6, "W2": mu1.T @ mu2 / 8 - ch1.T @ ch2 / 6,
                "b": v.mean(0) - cv.mean(0), "c1": mu1.mean(0) - ch1.mean(0),
                "c2": mu2.mean(0) - ch2.mean(0)}
    chex.assert_trees_all_close(grads, expected, rtol=1e-10, atol=1e-12)
    assert not np.array_equal(np.asarray(cv), np.asarray(start[0]))  # the chains moved


def tiny_sbn(rng):
  gen = {"a2": random(2, rng, 0.5), "W2": random((2, 3), rng), "b1": random(3, rng, 0.5),
         "W1": random((3, 5), rng), "b0": random(5, rng, 0.5)}
  rec = {"R1": random((5, 3), rng, 0.5), "r1": random(3, rng, 0.5), "R2": random((3, 2), rng, 0.5),
         "r2": random(2, rng, 0.5)}
  return gen, rec


def test_sbn_importance_estimate_approaches_exact_log_p():
  with jax.enable_x64(True):
    gen, rec = tiny_sbn(np.random.default_rng(5))
    v = jnp.asarray(states(5))
    exact = np.asarray(sbn.log_prob_exact(gen, v))
    assert float(jnp.sum(jnp.exp(exact))) == pytest.approx(1.0, abs=1e-10)
    # The importance weights are unbiased: Σ_h q(h|v) p(v,h)/q(h|v) = p(v), by enumeration.
    h = jnp.asarray(states(5))
    h1, h2 = h[:, :3], h[:, 3:]
    per_h = jax.vmap(lambda a, b: (sbn.log_joint(gen, v, jnp.broadcast_to(a, (32, 3)), jnp.broadcast_to(b, (32, 2))),
                                   sbn.log_recognition(rec, v, jnp.broadcast_to(a, (32, 3)), jnp.broadcast_to(b, (32, 2)))))(h1, h2)
    log_joint, log_q = (np.asarray(t) for t in per_h)
    assert np.allclose(np.exp(log_q).sum(0), 1.0)
    np.testing.assert_allclose(logsumexp(log_q + (log_joint - log_q), axis=0), exact, atol=1e-10)
    # Sampled: the bound tightens with k and reaches log p(v) within Monte Carlo error.
    one = np.asarray(sbn.log_prob_importance(gen, rec, v, jax.random.key(0), 1))
    many = np.asarray(sbn.log_prob_importance(gen, rec, v, jax.random.key(0), 20000))
    assert np.mean(np.abs(many - exact)) < 0.05, np.abs(many - exact)
    assert np.mean(exact - one) > 10 * np.mean(np.abs(exact - many))


def test_wake_sleep_raises_the_exact_log_likelihood():
  with jax.enable_x64(True):
    rng = np.random.default_rng(6)
    gen, rec = sbn.init_params(jax.random.key(0), 5, 3, 2, scale=0.3)
    prototypes = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1]], np.float64)
    data = jnp.asarray(np.abs(prototypes[rng.integers(0, 2, 300)] - (rng.random((300, 5)) < 0.05)))
    before = float(jnp.mean(sbn.log_prob_exact(gen, data)))
    step = jax.jit(sbn.wake_sleep_gradients)
    for i in range(600):
      wake, sleep = step(gen, rec, data, jax.random.key(i))
      gen = jax.tree.map(lambda p, g: p + 0.1 * g, gen, wake)
      rec = jax.tree.map(lambda p, g: p + 0.1 * g, rec, sleep)
    after = float(jnp.mean(sbn.log_prob_exact(gen, data)))
    assert after > before + 1.0, (before, after)
