r"""Throughput benchmarks (not tests): train steps/s and examples/s of a family's real train step.

  python -m experiments.bench vae [--steps=300] [--config=experiments/configs/vae.py]

Times the jitted, sharded, donated train step on the configured data (after compilation
and warm-up), with the host input pipeline included, and prints the machine it ran on.
"""

from __future__ import annotations

import os
import platform
import time

import jax
import numpy as np
from absl import app, flags, logging
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import config_flags

from gen_jax.data import BatchSampler, load_dataset
from gen_jax.tasks import autoencoders
from gen_jax.training import make_mesh, make_train_step
from gen_jax.training.optim import make_optimizer
from gen_jax.training.trainer import DATA_STREAM, LOSS_STREAM, initial_state, to_global

_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
_STEPS = flags.DEFINE_integer("steps", 300, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed steps after compilation.")
_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_CONFIG_DIR, "vae.py"),
                                          "Config of the benchmarked model.", lock_config=True)
BENCHMARKS = {"vae": autoencoders.make_task}


def machine() -> str:
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  devices = jax.devices()
  return (f"{cpu}, {os.cpu_count()} cores; jax {jax.__version__} on {len(devices)} "
          f"{devices[0].platform} device(s) ({devices[0].device_kind})")


def bench_train_step(make_task, config, steps: int, warmup: int):
  dataset = load_dataset(config.data)
  task = make_task(config, dataset)
  mesh = make_mesh(int(config.get("num_devices", 0)))
  tx, _ = make_optimizer(config.optim, int(config.train.num_steps))
  root = jax.random.key(int(config.seed))
  sampler = BatchSampler(len(dataset.train), int(config.train.batch_size), int(config.seed))
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  first = sampler.local_batch(dataset.train, 0)
  x0 = np.zeros((1, *dataset.element_shape), np.float32)
  state = jax.device_put(initial_state(task, tx, x0, root), NamedSharding(mesh, PartitionSpec()))
  step_fn = make_train_step(task, tx, tuple(config.data.transforms), jax.random.fold_in(root, DATA_STREAM),
                            jax.random.fold_in(root, LOSS_STREAM), float(config.train.ema_decay), mesh)
  del first
  for i in range(warmup):
    state, terms = step_fn(state, to_global(sampler.local_batch(dataset.train, i), sharding))
  jax.block_until_ready(terms)
  start = time.perf_counter()
  for i in range(warmup, warmup + steps):
    state, terms = step_fn(state, to_global(sampler.local_batch(dataset.train, i), sharding))
  jax.block_until_ready(terms)
  seconds = time.perf_counter() - start
  return steps / seconds, steps * int(config.train.batch_size) / seconds


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHMARKS:
    raise app.UsageError(f"usage: python -m experiments.bench {{{'|'.join(BENCHMARKS)}}}")
  logging.set_verbosity(logging.WARNING)
  config = _CONFIG.value
  steps_per_sec, examples_per_sec = bench_train_step(BENCHMARKS[argv[1]], config, _STEPS.value,
                                                     _WARMUP.value)
  print(f"machine: {machine()}")
  print(f"{argv[1]} ({config.model.kind}, {config.model.network} {tuple(config.model.sizes)}, "
        f"z={config.model.latent_dim}) on {config.data.name}, global batch "
        f"{config.train.batch_size}: {steps_per_sec:.1f} train steps/s, "
        f"{examples_per_sec:.0f} examples/s")


if __name__ == "__main__":
  app.run(main)
