"""Shared test helpers."""


def with_overrides(config, **overrides):
  """Unlocks `config`, turns the progress bar off and sets dotted fields, e.g.
  with_overrides(c, **{"train.num_steps": 20})."""
  with config.unlocked():
    config.train.progress_bar = False
    for path, value in overrides.items():
      node = config
      *parents, leaf = path.split(".")
      for part in parents:
        node = node[part]
      node[leaf] = value
  return config


# A few steps of a :smoke config: enough to train, checkpoint, log and evaluate once.
FEW_STEPS = {"train.num_steps": 4, "train.log_every": 2, "train.checkpoint_every": 4,
             "train.sample_every": 0}


def adam_losses(loss, params, steps: int = 5, learning_rate: float = 1e-2):
  """The losses of `steps` Adam steps on loss(params) from `params` (a lax.scan; jit the caller)."""
  import jax
  import optax
  tx = optax.adam(learning_rate)

  def step(carry, _):
    p, opt_state = carry
    value, grads = jax.value_and_grad(loss)(p)
    updates, opt_state = tx.update(grads, opt_state, p)
    return (optax.apply_updates(p, updates), opt_state), value

  return jax.lax.scan(step, (params, tx.init(params)), length=steps)[1]


def check_points_tools(workdir, config, nll: float, method_word: str):
  """A 2-D run's tools: experiments.log_prob on the test points reproduces eval.json's `nll`
  by the named method, and experiments.sample draws finite points; returns 16 samples."""
  import numpy as np
  from experiments import log_prob as log_prob_tool
  from experiments import sample as sample_tool
  from gen_jax.data import load_dataset
  log_p, method = log_prob_tool.log_prob_run(str(workdir), load_dataset(config.data).test.arrays["x"])
  assert method_word in method
  np.testing.assert_allclose(-log_p.mean(), nll, rtol=1e-5)
  samples = sample_tool.sample_run(str(workdir), 16)
  assert samples.shape == (16, 2) and np.all(np.isfinite(samples))
  return samples
