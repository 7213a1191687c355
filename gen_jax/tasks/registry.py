"""The one registry of families: what `experiments.evaluate`, `experiments.sample` and
`experiments.log_prob` use to rebuild a run's task from its config.json (explicit entries, no
registration by import side effects)."""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Optional

from gen_jax.data import load_dataset
from gen_jax.tasks import (autoencoders, autoregressive, dbm, dbn, diffusion, ebm, flows, gan, hopfield,
                           mixtures, rbm, sbn)
from gen_jax.training import trainer
from gen_jax.training.workdir import CONFIG_FILE, read_config


@dataclasses.dataclass(frozen=True)
class Family:
  name: str
  train_and_evaluate: Callable
  # (config, dataset) -> Task of the run's model; None for experiments that leave no single
  # trained model in their workdir (a DBN's layers, Hopfield's capacity sweep).
  make_task: Optional[Callable] = None


FAMILIES: Mapping[str, Family] = {
    "autoencoders": Family("autoencoders", autoencoders.train_and_evaluate, autoencoders.make_task),
    "autoregressive": Family("autoregressive", autoregressive.train_and_evaluate,
                             autoregressive.make_task),
    "diffusion": Family("diffusion", diffusion.train_and_evaluate, diffusion.make_task),
    "ebm": Family("ebm", ebm.train_and_evaluate, ebm.make_task),
    "flows": Family("flows", flows.train_and_evaluate, flows.make_task),
    "gan": Family("gan", gan.train_and_evaluate, gan.make_task),
    "mixtures": Family("mixtures", mixtures.train_and_evaluate, mixtures.make_task),
    "rbm": Family("rbm", rbm.train_and_evaluate, rbm.make_task),
    "dbm": Family("dbm", dbm.train_and_evaluate, dbm.make_task),
    "sbn": Family("sbn", sbn.train_and_evaluate, sbn.make_task),
    "dbn": Family("dbn", dbn.train_and_evaluate),
    "hopfield": Family("hopfield", hopfield.train_and_evaluate),
}


@dataclasses.dataclass
class LoadedRun:
  config: object
  dataset: object
  task: object
  params: object
  step: int


def family_of(config, workdir: str) -> Family:
  name = config.get("family")
  if name not in FAMILIES:
    raise ValueError(f"{os.path.join(workdir, CONFIG_FILE)} names family {name!r}; known: "
                     f"{sorted(FAMILIES)}")
  return FAMILIES[name]


def load_run(workdir: str, which: str = "ema_params") -> LoadedRun:
  """A trained run's config, dataset, task and parameters (`which`: "ema_params" or
  "params") from its newest complete checkpoint."""
  config = read_config(workdir)
  family = family_of(config, workdir)
  if family.make_task is None:
    raise ValueError(f"a {family.name} run leaves no single model to load from {workdir}: "
                     "evaluate, sample and log_prob apply to the families "
                     f"{sorted(n for n, f in FAMILIES.items() if f.make_task)}")
  dataset = load_dataset(config.data)
  task = family.make_task(config, dataset)
  params, step = trainer.restore_params(task, config, workdir, dataset, which)
  return LoadedRun(config, dataset, task, params, step)
