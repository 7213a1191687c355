"""The RBM task: the free-energy surrogate's gradient is the CD gradient, PCD chains are
checkpointed (exact resume), and the evaluation's AIS agrees with exact log Z."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import rbm as rbm_config
from gen_jax.boltzmann import rbm
from gen_jax.data import load_dataset
from gen_jax.tasks import rbm as rbm_task
from tests.helpers import with_overrides


def smoke_config(**overrides):
  return with_overrides(rbm_config.get_config("smoke"), **overrides)


@pytest.fixture(scope="module")
def digits(data_dir):
  return load_dataset(smoke_config().data)


def test_surrogate_gradient_is_minus_the_cd_gradient(digits):
  config = smoke_config(**{"model.method": "cd", "model.k": 3})
  task = rbm_task.make_task(config, digits)
  v = (jax.random.uniform(jax.random.key(0), (20, 8, 8, 1)) < 0.3).astype(jnp.float32)
  params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.key(1), p.shape),
                        task.init(jax.random.key(2), v[:1]))
  batch = {"x": v, "index": jnp.arange(20, dtype=jnp.uint32)}
  key = jax.random.key(3)
  grads = jax.grad(lambda p: task.loss_fn(p, batch, key, {})[0])(params)
  # The same negative phase, by hand: h_0 ~ p(h | v_data), then v_1, h_1, v_2, h_2, v_3, draw
  # number s of chain j keyed by fold_in(fold_in(key, j), s).
  flat = v.reshape(20, -1)
  row_keys = [jax.random.fold_in(key, j) for j in range(20)]

  def draw(probs, s):
    return jnp.stack([jax.random.bernoulli(jax.random.fold_in(row_keys[j], s), probs[j])
                      for j in range(20)]).astype(jnp.float32)

  h = draw(rbm.hidden_probs(params, flat), 0)
  for i in range(1, 4):
    v_model = draw(rbm.visible_probs(params, h), 2 * i - 1)
    h = draw(rbm.hidden_probs(params, v_model), 2 * i)
  h_data, h_model = rbm.hidden_probs(params, flat), rbm.hidden_probs(params, v_model)
  want = {"W": flat.T @ h_data / 20 - v_model.T @ h_model / 20,
          "b": flat.mean(0) - v_model.mean(0), "c": h_data.mean(0) - h_model.mean(0)}
  chex.assert_trees_all_close(jax.tree.map(lambda g: -g, grads), want, atol=1e-5)


@pytest.mark.parametrize("persistent_state", ["hidden", "visible"])
def test_persistent_chains_sample_the_model(digits, persistent_state):
  """With the parameters held fixed, the PCD states the loss carries forward are a Markov chain
  whose stationary law is the RBM's: the marginal of 3 hidden units over 150 steps of 200
  chains (the histogram of hidden states; for visible states, the mean of the exact
  p(h | v_chain)) is within TV 0.03 of p(h) ∝ exp(cᵀh + Σ_i softplus(b_i + (Wh)_i))."""
  config = smoke_config(**{"model.num_hidden": 3, "model.monitors": False,
                           "model.persistent_state": persistent_state})
  task = rbm_task.make_task(config, digits)
  rng = np.random.default_rng(0)
  params = {"W": jnp.asarray(rng.normal(0, 0.4, (64, 3)), jnp.float32),
            "b": jnp.asarray(rng.normal(0, 1.0, 64), jnp.float32),
            "c": jnp.asarray([1.0, -1.0, 0.5], jnp.float32)}
  n_chains, n_steps, burn_in = 200, 150, 20
  x = (rng.random((n_chains, 8, 8, 1)) < 0.3).astype(np.float32)
  batch = {"x": jnp.asarray(x), "index": jnp.arange(n_chains, dtype=jnp.uint32)}
  states = np.array([[(c >> s) & 1 for s in (2, 1, 0)] for c in range(8)], np.float64)

  @jax.jit
  def advance(aux, step):
    return task.loss_fn(params, batch, jax.random.fold_in(jax.random.key(1), step), aux)[1][1]

  def state_probabilities(aux):  # (chains, 8)
    if persistent_state == "hidden":
      return np.eye(8)[np.asarray(aux["hidden_chains"] @ jnp.array([4.0, 2.0, 1.0])).astype(int)]
    p = np.asarray(rbm.hidden_probs(params, aux["visible_chains"]), np.float64)
    return np.prod(np.where(states[None] == 1, p[:, None], 1 - p[:, None]), axis=-1)

  aux = task.init_carry(jax.random.key(0), batch, params)
  total = np.zeros(8)
  for step in range(n_steps):
    aux = advance(aux, step)
    if step >= burn_in:
      total += state_probabilities(aux).sum(0)
  w, b, c = (np.asarray(params[n], np.float64) for n in ("W", "b", "c"))
  log_p = states @ c + np.logaddexp(0.0, b + states @ w.T).sum(-1)
  exact = np.exp(log_p - log_p.max())
  exact /= exact.sum()
  tv = 0.5 * np.abs(total / total.sum() - exact).sum()
  assert tv < 0.03, (tv, total / total.sum(), exact)


def test_pcd_run_resumes_exactly_with_its_chains(tmp_path, digits, capsys):
  config = smoke_config(**{"eval.ais_chains": 8})
  straight = rbm_task.train(rbm_task.make_task(config, digits), config, str(tmp_path / "a"), digits)
  first = rbm_task.train(rbm_task.make_task(config, digits), config, str(tmp_path / "b"), digits,
                         stop_after_step=20)
  resumed = rbm_task.train(rbm_task.make_task(config, digits), config, str(tmp_path / "b"), digits)
  assert first.step == 20 and "resuming from step 20" in capsys.readouterr().out
  chex.assert_trees_all_equal(jax.device_get(straight.state["params"]),
                              jax.device_get(resumed.state["params"]))
  chex.assert_trees_all_equal(jax.device_get(straight.state["carry"]), jax.device_get(resumed.state["carry"]))


def test_evaluation_ais_matches_exact_log_z(tmp_path, digits):
  config = smoke_config(**{"train.num_steps": 200, "eval.ais_chains": 50})
  result = rbm_task.train(rbm_task.make_task(config, digits), config, str(tmp_path), digits)
  metrics = result.eval_metrics
  assert abs(metrics["ais_log_z"] - metrics["exact_log_z"]) < 0.1, metrics
  assert metrics["ais_temperatures"] == 14_501
  assert metrics["test_log_likelihood"] < 0
  assert (tmp_path / "samples" / "final_filters.png").exists()
  assert (tmp_path / "samples" / "final_samples.png").exists()


def test_non_binary_data_is_refused(tmp_path, digits):
  config = smoke_config(**{"data.transforms": ()})
  with pytest.raises(ValueError, match="binary data"):
    rbm_task.train(rbm_task.make_task(config, digits), config, str(tmp_path), digits)


def test_gaussian_rbm_starts_at_the_diagonal_gaussian_and_is_scored_exactly(tmp_path, data_dir):
  """With W ≈ 0 and b = 0 on z-scores the model is the diagonal Gaussian of the training data,
  so its exact test log-likelihood must equal that baseline (a check of log Z, of the
  standardization and of the change of units)."""
  from experiments.configs import gaussian_rbm
  config = with_overrides(gaussian_rbm.get_config("smoke"), **{
      "train.num_steps": 1, "optim.learning_rate": 0.0, "model.init_scale": 0.0,
      "train.checkpoint_every": 1, "train.sample_every": 0, "train.progress_bar": False})
  dataset = load_dataset(config.data)
  metrics = rbm_task.train(rbm_task.make_task(config, dataset), config, str(tmp_path), dataset).eval_metrics
  assert abs(metrics["test_log_likelihood"] - metrics["diagonal_gaussian_test_log_likelihood"]) < 1e-2, metrics
  assert metrics["full_gaussian_test_log_likelihood"] > metrics["diagonal_gaussian_test_log_likelihood"]


def test_unknown_visible_units_are_named(digits):
  with pytest.raises(ValueError, match="model.visible 'gausian'"):
    rbm_task.make_task(smoke_config(**{"model.visible": "gausian"}), digits)
  with pytest.raises(ValueError, match="model.persistent_state 'hiden'.*'hidden', 'visible'"):
    rbm_task.make_task(smoke_config(**{"model.persistent_state": "hiden"}), digits)
