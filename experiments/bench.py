r"""Throughput benchmarks (not tests): train steps/s and examples/s of a family's real train step.

  python -m experiments.bench vae [--steps=300] [--config=experiments/configs/vae.py]
  python -m experiments.bench rbm --config=experiments/configs/rbm.py
  python -m experiments.bench diffusion --config=experiments/configs/diffusion.py --steps=50

`vae`: times the jitted, sharded, donated train step on the configured data (after
compilation and warm-up), with the host input pipeline included.
`rbm`: one PCD-1 epoch on mnist5k (784x500, batch 100) of gen_jax's train step against
scikit-learn's BernoulliRBM with the same settings, side by side in one run, and the
achieved GFLOP/s as a fraction of this machine's measured float32 matmul peak.
`diffusion`: train steps/s of the configured model, then DDIM-50 samples/s of the package's
compiled sampler against the same sampler as a Python loop over a jitted step.
All print the machine they ran on.
"""

from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from jax.sharding import NamedSharding, PartitionSpec
from ml_collections import config_flags

from gen_jax.data import BatchSampler, apply_transforms, load_dataset
from gen_jax.tasks import autoencoders
from gen_jax.training import make_mesh, make_train_step
from gen_jax.training.optim import make_optimizer
from gen_jax.keys import DATA_STREAM, LOSS_STREAM
from gen_jax.training.trainer import initial_state, to_global

_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
_STEPS = flags.DEFINE_integer("steps", 300, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed steps after compilation.")
_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_CONFIG_DIR, "vae.py"),
                                          "Config of the benchmarked model.", lock_config=True)
_EPOCHS = flags.DEFINE_integer("epochs", 5, "rbm: epochs timed for each side.")
_DDIM_STEPS = flags.DEFINE_integer("ddim_steps", 50, "diffusion: DDIM steps per sample.")
_SAMPLE_REPEATS = flags.DEFINE_integer("sample_repeats", 3, "diffusion: timed sampler draws.")
_SAMPLE_BATCHES = flags.DEFINE_list("sample_batches", ["250", "8"], "diffusion: sampler batch sizes.")
PEAK_MATMUL_SIZE = 2048
PEAK_REPEATS = 10
# Matrix products per PCD-1 step, both implementations: p(h|v_data), h and v of the chain,
# p(h|v_model), and the two outer products of the gradient.
RBM_MATMULS_PER_STEP = 6


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
  data_key = jax.random.fold_in(root, DATA_STREAM)
  first_x = jax.jit(lambda b: apply_transforms(tuple(config.data.transforms), b, data_key, True))(
      sampler.local_batch(dataset.train, 0))
  state = jax.device_put(initial_state(task, tx, first_x, root),
                         NamedSharding(mesh, PartitionSpec()))
  step_fn = make_train_step(task, tx, tuple(config.data.transforms), data_key,
                            jax.random.fold_in(root, LOSS_STREAM), float(config.train.ema_decay), mesh)
  for i in range(warmup):
    state, terms = step_fn(state, to_global(sampler.local_batch(dataset.train, i), sharding))
  jax.block_until_ready(terms)
  start = time.perf_counter()
  for i in range(warmup, warmup + steps):
    state, terms = step_fn(state, to_global(sampler.local_batch(dataset.train, i), sharding))
  jax.block_until_ready(terms)
  seconds = time.perf_counter() - start
  return steps / seconds, steps * int(config.train.batch_size) / seconds


def matmul_peak_gflops(size: int = PEAK_MATMUL_SIZE, repeats: int = PEAK_REPEATS) -> float:
  """Measured float32 matmul throughput of this machine through XLA (GFLOP/s)."""
  a = jax.random.normal(jax.random.key(0), (size, size))
  matmul = jax.jit(lambda x, y: x @ y)
  jax.block_until_ready(matmul(a, a))
  start = time.perf_counter()
  for _ in range(repeats):
    out = matmul(a, a)
  jax.block_until_ready(out)
  return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def bench_vae(config):
  steps_per_sec, examples_per_sec = bench_train_step(autoencoders.make_task, config, _STEPS.value,
                                                     _WARMUP.value)
  print(f"vae ({config.model.kind}, {config.model.network} {tuple(config.model.sizes)}, "
        f"z={config.model.latent_dim}) on {config.data.name}, global batch "
        f"{config.train.batch_size}: {steps_per_sec:.1f} train steps/s, "
        f"{examples_per_sec:.0f} examples/s")


def bench_rbm(config):
  from sklearn.neural_network import BernoulliRBM
  from gen_jax.tasks import rbm as rbm_task
  with config.unlocked():
    config.model.monitors = False  # the same work as scikit-learn's update
  dataset = load_dataset(config.data)
  steps_per_epoch = len(dataset.train) // int(config.train.batch_size)
  epochs = _EPOCHS.value
  steps_per_sec, _ = bench_train_step(rbm_task.make_task, config, epochs * steps_per_epoch,
                                      _WARMUP.value)
  ours = steps_per_epoch / steps_per_sec
  images = dataset.train.arrays["x"].reshape(len(dataset.train), -1) / 255.0
  binary = (np.random.default_rng(0).random(images.shape) < images).astype(np.float64)
  theirs = {}
  for dtype in (np.float64, np.float32):  # BernoulliRBM computes in its input's dtype
    data = binary.astype(dtype)
    BernoulliRBM(n_components=int(config.model.num_hidden), batch_size=int(config.train.batch_size),
                 n_iter=1, random_state=0).fit(data)  # warm-up (first-call costs)
    sk = BernoulliRBM(n_components=int(config.model.num_hidden), learning_rate=0.01,
                      batch_size=int(config.train.batch_size), n_iter=epochs, random_state=0)
    start = time.perf_counter()
    sk.fit(data)
    theirs[np.dtype(dtype).name] = (time.perf_counter() - start) / epochs
  n_visible, n_hidden = binary.shape[1], int(config.model.num_hidden)
  flops = RBM_MATMULS_PER_STEP * 2 * int(config.train.batch_size) * n_visible * n_hidden
  achieved = flops * steps_per_sec / 1e9
  peak = matmul_peak_gflops()
  print(f"PCD-1 epoch on {config.data.name} ({n_visible}x{n_hidden}, batch {config.train.batch_size}, "
        f"{steps_per_epoch} steps), mean of {epochs} epochs:")
  print(f"  gen_jax (float32):      {ours * 1e3:.1f} ms/epoch")
  for name, seconds in theirs.items():
    print(f"  scikit-learn ({name}): {seconds * 1e3:.1f} ms/epoch (BernoulliRBM.fit) -> "
          f"gen_jax is {seconds / ours:.2f}x faster")
  print(f"  gen_jax achieved {achieved:.1f} GFLOP/s = {achieved / peak:.0%} of the measured "
        f"float32 matmul peak {peak:.1f} GFLOP/s ({PEAK_MATMUL_SIZE}^3 jit matmul)")


def bench_diffusion(config):
  """Train steps/s of the configured model, then DDIM samples/s: the package's compiled loop
  (one lax.scan) against the same sampler as a Python loop over a jitted DDIM step."""
  from gen_jax.diffusion import gaussian, samplers
  from gen_jax.keys import fold_in_indices
  from gen_jax.tasks import diffusion
  steps_per_sec, examples_per_sec = bench_train_step(diffusion.make_task, config, _STEPS.value,
                                                     _WARMUP.value)
  m = config.model
  print(f"diffusion ({m.process}, {m.network} {m.channels}x{tuple(m.channel_mults)}, "
        f"{m.num_res_blocks} res block(s)/level) on {config.data.name}, global batch "
        f"{config.train.batch_size}: {steps_per_sec:.2f} train steps/s, {examples_per_sec:.1f} examples/s")
  dataset = load_dataset(config.data)
  task = diffusion.make_task(config, dataset)
  model = diffusion.build_model(config, dataset)
  params = task.init(jax.random.key(0), np.zeros((1, *dataset.element_shape), np.float32))
  num_steps = _DDIM_STEPS.value
  settings = diffusion.SampleSettings("ddim", num_steps)
  eps_fn = model.eps_fn(params)
  schedule = model.process.schedule
  step = jax.jit(lambda x, t, t_prev: gaussian.ddim_step(schedule, x, t, t_prev, eps_fn(x, t), 0.0,
                                                         jnp.zeros_like(x)))
  ts = samplers.ddim_timesteps(schedule.num_steps, num_steps)
  t_prevs = np.concatenate([ts[1:], [-1]])
  for batch in [int(b) for b in _SAMPLE_BATCHES.value]:
    keys = fold_in_indices(jax.random.key(1), np.arange(batch))
    compiled = jax.jit(lambda k: model.sample(params, k, settings)).lower(keys).compile()

    def python_loop(keys, batch=batch):
      sampler_keys = jax.vmap(lambda k: jax.random.fold_in(k, diffusion.SAMPLER_STREAM))(keys)
      _, x = samplers.initial_noise(sampler_keys, (batch, *dataset.element_shape))
      for t, t_prev in zip(ts, t_prevs):
        x = step(x, jnp.full((batch,), t), jnp.full((batch,), t_prev))
      return x

    jax.block_until_ready(python_loop(keys))  # compiles the step
    timings = {}
    for name, fn in (("compiled loop (lax.scan)", compiled), ("Python loop over a jitted step", python_loop)):
      start = time.perf_counter()
      for _ in range(_SAMPLE_REPEATS.value):
        jax.block_until_ready(fn(keys))
      timings[name] = (time.perf_counter() - start) / _SAMPLE_REPEATS.value
    gap = float(np.max(np.abs(np.asarray(compiled(keys)) - np.asarray(python_loop(keys)))))
    print(f"DDIM-{num_steps} (eta 0), batch {batch}, mean of {_SAMPLE_REPEATS.value} draws "
          f"(max |difference| between the two: {gap:.2g}):")
    for name, seconds in timings.items():
      print(f"  {name:32s} {batch / seconds:8.1f} samples/s ({seconds:.3f} s per batch)")
    compiled_s, python_s = timings["compiled loop (lax.scan)"], timings["Python loop over a jitted step"]
    print(f"  compiled loop / Python loop speed: {python_s / compiled_s:.2f}x")


BENCHMARKS = {"vae": bench_vae, "rbm": bench_rbm, "diffusion": bench_diffusion}


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHMARKS:
    raise app.UsageError(f"usage: python -m experiments.bench {{{'|'.join(BENCHMARKS)}}}")
  logging.set_verbosity(logging.WARNING)
  print(f"machine: {machine()}")
  BENCHMARKS[argv[1]](_CONFIG.value)


if __name__ == "__main__":
  app.run(main)
