"""The step-level Task contract with a GAN-shaped toy family: two parameter groups with their
own optimizers, n critic updates per generator update, an EMA of the generator alone. It
trains through the trainer, resumes exactly and logs the same losses on 1 and 4 devices."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import common
from gen_jax.data import load_dataset
from gen_jax.training import Task, group_update, train
from gen_jax.training.writers import read_metrics
from tests.helpers import with_overrides

NOISE_DIM = 2


class MLP(nn.Module):
  out: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.out)(nn.tanh(nn.Dense(16)(x)))


def toy_gan_task(critic_steps: int) -> Task:
  """Non-saturating GAN on 2-D points; the batch is split into `critic_steps` chunks, one per
  discriminator update, then one generator update on fresh noise."""
  gen, disc = MLP(2), MLP(1)

  def init(key, x):
    return {"generator": gen.init(jax.random.fold_in(key, 0), jnp.zeros((1, NOISE_DIM))),
            "discriminator": disc.init(jax.random.fold_in(key, 1), x)}

  def noise(key, index, stream):
    return jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, stream), i),
                                                (NOISE_DIM,)))(index)

  def make_step(optimizers):
    def d_loss(d_params, g_params, real, z):
      fake = gen.apply(g_params, z)
      real_logits, fake_logits = disc.apply(d_params, real), disc.apply(d_params, fake)
      return jnp.mean(jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits))

    def g_loss(g_params, d_params, z):
      return jnp.mean(jax.nn.softplus(-disc.apply(d_params, gen.apply(g_params, z))))

    def step(state, batch, key):
      params, opt = dict(state["params"]), dict(state["opt_state"])
      chunks = jnp.split(batch["x"], critic_steps)
      indices = jnp.split(batch["index"], critic_steps)
      for real, index in zip(chunks, indices):
        loss_d, grads = jax.value_and_grad(d_loss)(params["discriminator"], params["generator"],
                                                   real, noise(key, index, 0))
        params["discriminator"], opt["discriminator"] = group_update(
            optimizers["discriminator"], params["discriminator"], opt["discriminator"], grads)
      loss_g, grads = jax.value_and_grad(g_loss)(params["generator"], params["discriminator"],
                                                 noise(key, batch["index"], 1))
      params["generator"], opt["generator"] = group_update(
          optimizers["generator"], params["generator"], opt["generator"], grads)
      return ({"params": params, "opt_state": opt, "carry": state["carry"]},
              {"discriminator_loss": loss_d, "generator_loss": loss_g})

    return step

  return Task(name=f"toy-gan-{critic_steps}", init=init, make_step=make_step,
              groups=("generator", "discriminator"), ema_groups=("generator",))


def toy_config(**overrides):
  c = common.trainer_defaults()
  common.tiny_run(c)
  c.data.name, c.data.transforms = "two_moons", ()
  c.data.train_size, c.data.test_size = 512, 64
  c.optim.warmup_steps = 0
  c.optim.generator = {"learning_rate": 2e-4, "b1": 0.5}
  c.optim.discriminator = {"learning_rate": 1e-3, "grad_clip_norm": 1.0}
  return with_overrides(c, **overrides)


@pytest.fixture(scope="module")
def moons(data_dir):
  return load_dataset(toy_config().data)


def logged(workdir):
  return [{k: v for k, v in r.items() if k != "steps_per_sec"} for r in read_metrics(workdir)]


@pytest.mark.parametrize("critic_steps", [1, 2])
def test_two_groups_train_resume_exactly_and_match_across_devices(tmp_path, moons, critic_steps):
  task = toy_gan_task(critic_steps)
  straight = train(task, toy_config(num_devices=1), str(tmp_path / "straight"), moons)
  # Each group has its own optimizer: its learning rate and state.
  records = logged(tmp_path / "straight")
  assert {"discriminator_loss", "generator_loss"} <= set(records[-1])
  first = records[0]
  assert first["learning_rate/generator"] == pytest.approx(2e-4 * (1 + np.cos(np.pi * 9 / 40)) / 2 * 0.9 + 2e-5, rel=1e-5)
  assert first["learning_rate/discriminator"] == pytest.approx(1e-3 * (1 + np.cos(np.pi * 9 / 40)) / 2 * 0.9 + 1e-4, rel=1e-5)
  assert set(straight.state["opt_state"]) == {"generator", "discriminator"}
  # The EMA tracks the generator alone.
  assert set(straight.state["ema_params"]) == {"generator"}
  assert np.isfinite(straight.last_terms["generator_loss"])

  resumed_dir = str(tmp_path / "resumed")
  train(task, toy_config(num_devices=1), resumed_dir, moons, stop_after_step=20)
  resumed = train(task, toy_config(num_devices=1, **{"train.steps_per_call": 3}), resumed_dir, moons)
  assert logged(tmp_path / "straight") == logged(resumed_dir)
  chex.assert_trees_all_equal(jax.device_get(straight.state["params"]),
                              jax.device_get(resumed.state["params"]))
  chex.assert_trees_all_equal(jax.device_get(straight.state["ema_params"]),
                              jax.device_get(resumed.state["ema_params"]))

  four = train(task, toy_config(num_devices=4), str(tmp_path / "four"), moons)
  losses = lambda d: np.array([[r["discriminator_loss"], r["generator_loss"]] for r in logged(d)
                               if "generator_loss" in r])
  np.testing.assert_allclose(losses(tmp_path / "straight"), losses(tmp_path / "four"), rtol=1e-4)
  chex.assert_trees_all_close(jax.device_get(straight.state["params"]),
                              jax.device_get(four.state["params"]), rtol=1e-4, atol=1e-6)


def test_a_task_gives_a_loss_or_a_step():
  with pytest.raises(TypeError, match="exactly one of loss_fn and make_step"):
    Task(name="neither", init=lambda k, x: {})
  with pytest.raises(TypeError, match=r"ema_groups \['critic'\] are not in groups"):
    Task(name="bad", init=lambda k, x: {}, make_step=lambda o: None, groups=("generator",),
         ema_groups=("critic",))


def test_group_optimizer_overrides_must_name_known_fields(tmp_path, moons):
  config = toy_config()
  with config.unlocked():
    config.optim.generator = {"learning_rat": 1e-3}
  with pytest.raises(ValueError, match=r"unknown field\(s\) \['learning_rat'\] in optim.generator"):
    train(toy_gan_task(1), config, str(tmp_path), moons)
  assert not any(tmp_path.iterdir())
