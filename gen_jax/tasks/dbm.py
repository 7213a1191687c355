"""Two-hidden-layer deep Boltzmann machines as a trainer task.

Joint training with a mean-field positive phase and persistent Gibbs chains, through the
surrogate L = mean E(v, sg(μ1), sg(μ2)) - mean E(sg(v~, h1~, h2~)), whose gradient is minus
the DBM update <·>_mean-field - <·>_chains (Salakhutdinov & Hinton 2009). Chains are keyed
per row by the global stream position and checkpointed.

With `model.pretrain_steps > 0` the joint phase starts from greedy weight-doubled
pre-training (Salakhutdinov & Hinton 2009, §3.1): the bottom RBM v-h1 with two tied copies
of v (up-pass σ(c + 2vᵀW1)) in `workdir/pretrain_layer_0`, then the top RBM h1-h2 with two
tied copies of h2 (down-pass σ(b + 2W2h2)) on one draw of h1 per image in
`workdir/pretrain_layer_1`; composed, h1 receives vᵀW1 + W2h2 (each input halved).
Each phase checkpoints and resumes on its own. Evaluation: AIS log Z over (v, h2) with h1
summed out, and the mean-field variational lower bound on the test log-likelihood, in nats.
"""

from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.boltzmann import dbm, rbm
from gen_jax.data import evaluation_split, load_dataset
from gen_jax.data.transforms import check_binary
from gen_jax.keys import fold_in_indices, stream_key
from gen_jax.tasks import dbn as dbn_task
from gen_jax.tasks import rbm as rbm_task
from gen_jax.training import Task, plots, train

NUM_SAMPLES_SHOWN = 64


def make_task(config, dataset, initial_params=None) -> Task:
  """`initial_params` (e.g. composed from pre-trained RBMs) replace the random start."""
  m = config.model
  image_shape = tuple(dataset.element_shape)
  n_visible = math.prod(image_shape)
  transforms = tuple(config.data.transforms)

  def init(key, x):
    if initial_params is not None:
      return jax.tree.map(jnp.asarray, initial_params)
    return dbm.init_params(key, n_visible, int(m.num_hidden1), int(m.num_hidden2), float(m.init_scale))

  def init_carry(key, batch, params):
    v = batch["x"].reshape(batch["x"].shape[0], -1)
    mu1, mu2 = dbm.mean_field(params, v, 1)
    return {"v": v, "h1": jnp.round(mu1), "h2": jnp.round(mu2)}

  def loss_fn(params, batch, key, carry):
    """dbm.pcd_loss (the DBM learning rule) on the batch; the chains are the carry."""
    v = batch["x"].reshape(batch["x"].shape[0], -1)
    chains = (carry["v"], carry["h1"], carry["h2"])
    loss, (mu1, mu2), (cv, ch1, ch2) = dbm.pcd_loss(
        params, v, chains, fold_in_indices(key, batch["index"]), int(m.mean_field_iters),
        int(m.gibbs_steps))
    terms = {"energy_gap": loss, "mean_field_h1": jnp.mean(mu1), "mean_field_h2": jnp.mean(mu2)}
    return loss, (terms, {"v": cv, "h1": ch1, "h2": ch2})

  def check_data(x):
    check_binary(x, "a DBM")

  def split_data(split):
    return jnp.asarray(evaluation_split(dataset, split, transforms, config.seed, flatten=True))

  def evaluate(params, dataset_, key, final):
    test = split_data("test")
    if not final:
      return {"test_mean_field_h1": float(jnp.mean(dbm.mean_field(params, test, 10)[0]))}
    train_v = split_data("train")
    started = time.perf_counter()
    log_z, std_err = jax.jit(dbm.ais_log_partition, static_argnums=2)(
        params, key, int(config.eval.ais_chains), None, rbm.base_rate_bias(train_v))
    bound = np.asarray(dbm.variational_lower_bound(params, test, log_z, int(config.eval.mean_field_iters)))
    train_bound = np.asarray(dbm.variational_lower_bound(params, train_v, log_z, int(config.eval.mean_field_iters)))
    return {"ais_log_z": float(log_z), "ais_log_z_std_err": float(std_err),
            "ais_chains": int(config.eval.ais_chains), "ais_seconds": time.perf_counter() - started,
            "test_variational_bound": float(bound.mean()),
            "test_variational_bound_sem": float(bound.std() / math.sqrt(len(bound))),
            "train_variational_bound": float(train_bound.mean())}

  def write_figures(params, dataset_, prefix, key, final):
    v = split_data("test")[:NUM_SAMPLES_SHOWN]
    mu1, mu2 = dbm.mean_field(params, v, 1)
    state = (v, jnp.round(mu1), jnp.round(mu2))
    steps = int(config.eval.sample_gibbs_steps) if final else int(config.eval.sample_gibbs_steps) // 10

    def body(i, state):
      return dbm.gibbs_step(params, state, jax.random.fold_in(key, i))

    _, h1, _ = jax.lax.fori_loop(0, steps, body, state)
    probs = jax.nn.sigmoid(params["b"] + h1 @ params["W1"].T)
    return [plots.save_image_grid(np.asarray(probs).reshape(-1, *image_shape), f"{prefix}_samples.png", 8)]

  return Task(name="dbm", init=init, loss_fn=loss_fn, check_data=check_data, evaluate=evaluate,
              write_figures=write_figures, init_carry=init_carry,
              per_example_carry=("v", "h1", "h2"))


def pretrain(config, workdir: str, dataset):
  """Greedy weight-doubled pre-training; returns the composed DBM parameters."""
  m = config.model
  current, _, _ = dbn_task.binary_dataset(config, dataset)
  modules = []
  for layer, (num_hidden, visible_copies, hidden_copies) in enumerate(
      ((int(m.num_hidden1), 2, 1), (int(m.num_hidden2), 1, 2))):
    c = dbn_task.layer_config(config, layer, num_hidden)
    with c.unlocked():
      c.data.transforms = ()  # already binary
      c.model.visible_copies, c.model.hidden_copies = visible_copies, hidden_copies
      c.train.num_steps = int(m.pretrain_steps)
      c.optim.learning_rate = float(m.pretrain_learning_rate)
    result = train(rbm_task.make_task(c, current), c, os.path.join(workdir, f"pretrain_layer_{layer}"), current)
    modules.append(jax.device_get(result.state["params"]))
    if layer == 0:
      current = dbn_task.hidden_dataset(
          modules[0], current, stream_key(config.seed, dbn_task.HIDDEN_SAMPLE_STREAM), current.name,
          visible_copies=2)
  return dbm.from_pretrained_rbms(*modules)


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  dataset = load_dataset(config.data)
  initial = pretrain(config, workdir, dataset) if int(config.model.pretrain_steps) > 0 else None
  return train(make_task(config, dataset, initial), config, workdir, dataset, stop_after_step)
