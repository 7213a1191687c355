r"""Throughput benchmarks (not tests): train steps/s and examples/s of a family's real train step.

  python -m experiments.bench vae [--steps=300] [--config=experiments/configs/vae.py]
  python -m experiments.bench rbm --config=experiments/configs/rbm.py
  python -m experiments.bench diffusion --config=experiments/configs/diffusion.py --steps=50
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m experiments.bench fsdp_memory \
      --config=experiments/configs/diffusion.py
  python -m experiments.bench peers [--peer_rounds=7] [--peer_comparisons=mlp_vae,conv_vae,unet]
  python -m experiments.bench autoregressive_sampling \
      --config=experiments/configs/autoregressive_mnist5k.py --sample_batches=8

`vae`: times the jitted, sharded, donated train step on the configured data (after
compilation and warm-up), with the host input pipeline included.
`rbm`: one PCD-1 epoch on mnist5k (784x500, batch 100) of gen_jax's train step against
scikit-learn's BernoulliRBM with the same settings, in interleaved rounds of one run, and
the achieved GFLOP/s as a fraction of this machine's measured float32 matmul peak.
`diffusion`: train steps/s of the configured model, then DDIM-50 samples/s of the package's
compiled sampler against the same sampler as a Python loop over a jitted step.
`autoregressive_sampling`: the causal transformer's KV-cached sampling against a full pass per
token at the data's sequence length, and PixelCNN++ samples/s.
`fsdp_memory`: per-device parameter, optimizer and EMA bytes under mesh.fsdp = 1, 2, 4, 8.
`peers`: train steps against a bare jitted loop and PyTorch (MLP and conv VAEs, the DDPM
U-Net), in interleaved rounds (`experiments.bench_peers`; needs the `bench` extra).
All print the machine they ran on.
"""

from __future__ import annotations

import copy
import os
import platform
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import bench_peers
from experiments.bench_peers import train_step_runner
from gen_jax.data import load_dataset
from gen_jax.tasks import autoencoders
from gen_jax.training import trainer

_CONFIG_DIR = os.path.join(os.path.dirname(__file__), "configs")
_STEPS = flags.DEFINE_integer("steps", 300, "Timed steps.")
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed steps after compilation.")
_CONFIG = config_flags.DEFINE_config_file("config", os.path.join(_CONFIG_DIR, "vae.py"),
                                          "Config of the benchmarked model.", lock_config=True)
_EPOCHS = flags.DEFINE_integer("epochs", 2, "rbm: epochs timed for each side in a round.")
_ROUNDS = flags.DEFINE_integer("rounds", 15, "rbm: interleaved timing rounds (medians reported).")
_DDIM_STEPS = flags.DEFINE_integer("ddim_steps", 50, "diffusion: DDIM steps per sample.")
_SAMPLE_REPEATS = flags.DEFINE_integer("sample_repeats", 3, "diffusion: timed sampler draws.")
_SAMPLE_BATCHES = flags.DEFINE_list("sample_batches", ["250", "8"], "diffusion: sampler batch sizes.")
PEAK_MATMUL_SIZE = 2048
PEAK_REPEATS = 10
# Matrix products (batch x 784 x 500 each) per PCD-1 step, both implementations, chains kept
# as hidden states: v ~ p(v | h_chain), p(h | v) of data and chains, and the two outer
# products of the gradient.
RBM_MATMULS_PER_STEP = 5
# Pause before each timed side (s): BLAS and XLA worker threads spin for a while after work.
SETTLE_SECONDS = 0.5


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
  seconds = train_step_runner(make_task, config, warmup)[0](steps)
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
  """One PCD-1 epoch of the trainer's step against scikit-learn's BernoulliRBM.fit, timed in
  interleaved rounds (gen_jax with scikit-learn's update, gen_jax with the config's,
  scikit-learn in float32 and float64; the order reversed every other round, each timing
  after a pause in which the other side's spinning worker threads go idle) so all see the
  same machine; medians over rounds are reported, with the range of the per-round speed
  ratios. scikit-learn's one-off cost of fit (input validation, weight initialisation) is
  measured by fit with n_iter=0 and subtracted."""
  from sklearn.neural_network import BernoulliRBM
  from gen_jax.tasks import rbm as rbm_task
  with config.unlocked():
    config.model.monitors = False  # the same work as scikit-learn's update
  same_update = copy.deepcopy(config)
  with same_update.unlocked():  # BernoulliRBM: plain SGD at a constant learning rate
    same_update.optim.b1 = 0.0
    same_update.optim.final_lr_fraction = 1.0
    same_update.optim.warmup_steps = 0
  dataset = load_dataset(config.data)
  batch_size, n_hidden = int(config.train.batch_size), int(config.model.num_hidden)
  steps_per_epoch = len(dataset.train) // batch_size
  epochs, rounds = _EPOCHS.value, _ROUNDS.value
  ours = {"SGD, constant learning rate (scikit-learn's update)": same_update,
          f"the config's update (SGD, momentum {config.optim.b1})": config}
  runners = {name: train_step_runner(rbm_task.make_task, c, _WARMUP.value, dataset)[0]
             for name, c in ours.items()}
  for run in runners.values():
    run(epochs * steps_per_epoch)  # compiles every call length a round uses
  images = dataset.train.arrays["x"].reshape(len(dataset.train), -1) / 255.0
  binary = (np.random.default_rng(0).random(images.shape) < images).astype(np.float64)

  def sklearn_fit_seconds(data, n_iter):
    model = BernoulliRBM(n_components=n_hidden, learning_rate=float(config.optim.learning_rate),
                         batch_size=batch_size, n_iter=n_iter, random_state=0)
    start = time.perf_counter()
    model.fit(data)
    return time.perf_counter() - start

  datasets = {"float32": binary.astype(np.float32), "float64": binary}
  for data in datasets.values():
    sklearn_fit_seconds(data, 1)  # warm-up (first-call costs)
  def time_gen_jax(name):
    time.sleep(SETTLE_SECONDS)
    return runners[name](epochs * steps_per_epoch) / epochs

  def time_sklearn(name):
    fixed = sklearn_fit_seconds(datasets[name], 0)
    time.sleep(SETTLE_SECONDS)
    return (sklearn_fit_seconds(datasets[name], epochs) - fixed) / epochs

  sides = [(name, time_gen_jax) for name in runners] + [(name, time_sklearn) for name in datasets]
  seconds = {name: [] for name, _ in sides}
  for i in range(rounds):
    for name, time_side in (sides if i % 2 == 0 else sides[::-1]):  # the order alternates
      seconds[name].append(time_side(name))
  seconds = {name: np.asarray(s) for name, s in seconds.items()}
  n_visible = binary.shape[1]
  flops = RBM_MATMULS_PER_STEP * 2 * batch_size * n_visible * n_hidden * steps_per_epoch
  peak = matmul_peak_gflops()
  print(f"PCD-1 epoch on {config.data.name} ({n_visible}x{n_hidden}, batch {batch_size}, "
        f"{steps_per_epoch} steps); median of {rounds} interleaved rounds of {epochs} epoch(s) each. "
        f"gen_jax: the trainer's step ({config.train.steps_per_call} steps a call), host input "
        f"pipeline and static binarization included.")
  for name in runners:
    achieved = flops / np.median(seconds[name]) / 1e9
    print(f"  gen_jax (float32), {name}: {1e3 * np.median(seconds[name]):.1f} ms/epoch, "
          f"{achieved:.1f} GFLOP/s = {achieved / peak:.0%} of the measured float32 matmul peak "
          f"{peak:.1f} GFLOP/s ({PEAK_MATMUL_SIZE}^3 jit matmul)")
    for other in datasets:
      ratios = seconds[other] / seconds[name]
      print(f"    vs scikit-learn ({other}), {1e3 * np.median(seconds[other]):.1f} ms/epoch "
            f"(BernoulliRBM.fit): {np.median(ratios):.2f}x faster (rounds: {ratios.min():.2f}x "
            f"to {ratios.max():.2f}x)")


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


def bench_fsdp_memory(config):
  """Per-device bytes of the parameters and the optimizer state (and the EMA) of the
  configured model under mesh.fsdp = 1, 2, 4, ... up to the device count, as the trainer lays
  them out (run with XLA_FLAGS=--xla_force_host_platform_device_count=8 on a CPU)."""
  from gen_jax.tasks import registry
  from gen_jax.training.sharding import bytes_per_device
  dataset = load_dataset(config.data)
  family = registry.FAMILIES[config.family]
  num_devices = len(jax.devices())
  print(f"{machine()}\n{config.family} model on {config.data.name}; bytes on the most loaded device")
  print("| mesh.fsdp | parameters | optimizer state | EMA | total |\n|---|---|---|---|---|")
  fsdp = 1
  while fsdp <= num_devices:
    with config.unlocked():
      config.mesh.fsdp = fsdp
      config.train.batch_size = max(int(config.train.batch_size), num_devices)
    run = trainer.setup(family.make_task(config, dataset), config,
                        tempfile.mkdtemp(prefix="gen_jax_bench_"), dataset)
    parts = [max(bytes_per_device(run.state[name]).values()) for name in ("params", "opt_state", "ema_params")]
    run.lock.release()
    print(f"| {fsdp} | " + " | ".join(f"{b / 2**20:.3f} MiB" for b in parts + [sum(parts)]) + " |")
    fsdp *= 2


def time_draws(fn, keys, repeats: int):
  """(seconds per call of fn(keys) after one untimed, compiling call; the output)."""
  jax.block_until_ready(fn(keys))
  time.sleep(SETTLE_SECONDS)
  start = time.perf_counter()
  for _ in range(repeats):
    out = jax.block_until_ready(fn(keys))
  return (time.perf_counter() - start) / repeats, out


def bench_autoregressive_sampling(config):
  """The causal transformer's sampling with its KV cache against full passes, at the config's
  sequence length (784 for mnist5k), and PixelCNN++ samples/s; untrained parameters (speed
  does not depend on them), batch `--sample_batches[-1]`."""
  from gen_jax.autoregressive import likelihood
  from gen_jax.keys import fold_in_indices
  from gen_jax.tasks import autoregressive
  dataset = load_dataset(config.data)
  m = config.model
  length = int(np.prod(dataset.element_shape))
  batch = int(_SAMPLE_BATCHES.value[-1])
  keys = fold_in_indices(jax.random.key(1), np.arange(batch))
  model = autoregressive.build_transformer(m, length, 2)
  params = model.init(jax.random.key(0), jnp.zeros((1, length), jnp.int32))
  step = lambda cache, previous, p: model.apply(params, cache, previous, p, method=model.decode)
  cached = jax.jit(lambda k: likelihood.sample_with_cache(
      step, model.init_cache(batch), likelihood.draw_categorical, k, length))
  uncached = jax.jit(lambda k: likelihood.sample_in_order(
      lambda t: model.apply(params, t), likelihood.draw_categorical, k, (length,), jnp.int32))
  (cached_seconds, cached_tokens), (uncached_seconds, uncached_tokens) = (
      time_draws(cached, keys, _SAMPLE_REPEATS.value), time_draws(uncached, keys, 1))
  timings = {"KV cache (one cached step per token)": cached_seconds,
             "no cache (a full pass per token)": uncached_seconds}
  same = bool(np.array_equal(np.asarray(cached_tokens), np.asarray(uncached_tokens)))
  print(f"transformer ({m.num_layers} blocks, {m.num_heads} heads, width {m.embed_dim}) sampling "
        f"{length} binary tokens, batch {batch} (identical samples: {same}):")
  for name, seconds in timings.items():
    print(f"  {name:40s} {seconds:8.3f} s per batch, {batch / seconds:8.2f} samples/s")
  print(f"  speed-up of the cache: {timings['no cache (a full pass per token)'] / timings['KV cache (one cached step per token)']:.1f}x")
  with config.unlocked():
    config.model.kind, config.data.transforms = "pixelcnn_pp", ()
  task = autoregressive.make_task(config, dataset)
  params = task.init(jax.random.key(0), jnp.zeros((1, *dataset.element_shape), jnp.float32))
  seconds, _ = time_draws(jax.jit(lambda k: task.sample(params, k)), keys, 1)
  print(f"PixelCNN++ ({m.channels} channels, {m.num_layers} gated layers, {m.num_mixtures} "
        f"logistics) on {dataset.element_shape} images, batch {batch}: {seconds:.2f} s per batch, "
        f"{batch / seconds:.2f} samples/s")


def bench_peer_comparisons(config):
  """gen_jax's train steps against a bare jitted loop and PyTorch (experiments.bench_peers)."""
  del config  # each comparison builds its own
  bench_peers.run_peers()


BENCHMARKS = {"vae": bench_vae, "rbm": bench_rbm, "diffusion": bench_diffusion,
              "autoregressive_sampling": bench_autoregressive_sampling,
              "fsdp_memory": bench_fsdp_memory, "peers": bench_peer_comparisons}


def main(argv):
  if len(argv) != 2 or argv[1] not in BENCHMARKS:
    raise app.UsageError(f"usage: python -m experiments.bench {{{'|'.join(BENCHMARKS)}}}")
  logging.set_verbosity(logging.WARNING)
  print(f"machine: {machine()}")
  BENCHMARKS[argv[1]](_CONFIG.value)


if __name__ == "__main__":
  app.run(main)
