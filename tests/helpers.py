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
