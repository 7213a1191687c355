r"""`python -m experiments.bench peers`: gen_jax's train steps against their peers, timed side by
side in one process (needs the `bench` extra: `pip install -e ".[bench]"`).

Comparisons (each side trains the same architecture, with the same parameter count, printed):
- `mlp_vae`: the MLP VAE (784-512-256-z32, Bernoulli decoder, Adam, batch 100) on dynamically
  binarized mnist5k: gen_jax's trainer step (host input pipeline, transforms, clipping,
  schedule, EMA and the non-finite guard included), a bare jitted Flax step of the same model
  and optimizer on device-resident batches (the floor), and PyTorch.
- `conv_vae`: the convolutional VAE at 32x32x3 (channels 32, 64, z32, batch 100: the network of
  README's picture-folder command) on crops of the photographs scikit-learn ships, with a
  Gaussian decoder (that command's discretized Gaussian needs log Φ differences that torch
  has no function for): gen_jax's trainer step and PyTorch.

Method: interleaved rounds (the order of the sides reversed every other round), a settle pause
before each timing (worker threads of the side before go idle), torch at `--torch_threads`
threads; medians over rounds, with the range of the per-round speed ratios in brackets.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from experiments.configs import vae as vae_config
from gen_jax import nets
from gen_jax.autoencoders import vae as vae_math
from gen_jax.data import load_dataset
from gen_jax.tasks import autoencoders
from gen_jax.training import trainer
from gen_jax.training.trainer import next_call_length

_ROUNDS = flags.DEFINE_integer("peer_rounds", 7, "peers: interleaved timing rounds.")
_TORCH_THREADS = flags.DEFINE_integer("torch_threads", 2, "peers: torch.set_num_threads.")
_ONLY = flags.DEFINE_list("peer_comparisons", [], "peers: run only these comparisons (default all).")
# Pause before each timed side (s): BLAS and XLA worker threads spin for a while after work.
SETTLE_SECONDS = 0.5
WARMUP_STEPS = 5
# Crops cut from each photograph for the 32x32x3 data (side in pixels before the resize).
CROPS_PER_PHOTO, CROP_SIDE = 400, 96


@dataclasses.dataclass
class Side:
  name: str
  num_params: int
  run: Callable[[int], float]  # run(steps) -> seconds for the next `steps` train steps


def interleaved_rounds(sides, steps: int, rounds: int) -> dict:
  """{side name: array of seconds per step, one per round}."""
  seconds = {s.name: [] for s in sides}
  for side in sides:
    side.run(WARMUP_STEPS)
  for r in range(rounds):
    for side in (sides if r % 2 == 0 else sides[::-1]):
      time.sleep(SETTLE_SECONDS)
      seconds[side.name].append(side.run(steps) / steps)
  return {name: np.asarray(s) for name, s in seconds.items()}


def report(title: str, sides, seconds: dict, ratios) -> list[tuple[str, float, float, float]]:
  """Prints steps/s per side and the ratios (numerator side / denominator side, as speeds);
  returns (label, median, min, max) for each ratio."""
  print(f"\n{title}")
  for side in sides:
    s = seconds[side.name]
    print(f"  {side.name:42s} {side.num_params:>10,d} params  {np.median(1 / s):8.2f} steps/s "
          f"[{np.min(1 / s):.2f}-{np.max(1 / s):.2f}]")
  rows = []
  for fast, slow in ratios:
    r = seconds[slow] / seconds[fast]
    rows.append((f"{fast} / {slow}", float(np.median(r)), float(r.min()), float(r.max())))
    print(f"  {fast} / {slow}: {np.median(r):.2f}x [{r.min():.2f}-{r.max():.2f}]")
  return rows


def count(tree) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


# ---------------------------------------------------------------- gen_jax sides


def train_step_runner(make_task, config, warmup: int, dataset=None):
  """Builds the trainer's jitted, donated step on the configured data (`train.steps_per_call`
  steps a call, as the trainer runs it), compiles it and runs `warmup` steps; returns
  (timed, run): timed(steps) -> seconds times the next `steps` steps of the training stream
  (host input pipeline included); `run` is the trainer's `Run`."""
  dataset = dataset or load_dataset(config.data)
  run = trainer.setup(make_task(config, dataset), config,
                      tempfile.mkdtemp(prefix="gen_jax_bench_"), dataset)
  advance = run.advance
  steps_per_call = int(config.train.get("steps_per_call", 1))
  position = 0

  def timed(steps: int) -> float:
    nonlocal position
    start, stop, terms = time.perf_counter(), position + steps, None
    while position < stop:
      length = next_call_length(position, stop, steps_per_call, ())
      run.state, terms = advance(run.state, position, length)
      position += length
    jax.block_until_ready(terms)
    return time.perf_counter() - start

  timed(warmup)
  return timed, run


def trainer_side(name: str, config, dataset) -> Side:
  runner, run = train_step_runner(autoencoders.make_task, config, 0, dataset)
  return Side(name, count(run.state["params"]), runner)


def bare_flax_side(config, images: np.ndarray) -> Side:
  """The floor: one jitted, donated step (-ELBO, one sample, of the same model; optax Adam at
  a constant learning rate) on batches already on the device, dynamically binarized in the
  step with one key per step."""
  m = config.model
  model = nets.VAE(images.shape[1:], m.latent_dim, m.network, tuple(m.sizes), m.likelihood, m.activation)
  params = model.init(jax.random.key(0), jnp.zeros((1, *images.shape[1:])), jax.random.key(1))
  tx = optax.adam(config.optim.learning_rate)
  batch_size = int(config.train.batch_size)
  batches = jnp.asarray(images[: len(images) // batch_size * batch_size].reshape(
      -1, batch_size, *images.shape[1:]))

  @jax.jit
  def step(params, opt_state, x, key):
    data_key, loss_key = jax.random.split(key)
    x = jax.random.bernoulli(data_key, x).astype(jnp.float32)
    loss = lambda p: -jnp.mean(vae_math.elbo(model.apply, p, x, loss_key))
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value

  state = {"params": params, "opt": tx.init(params), "i": 0}

  def run(steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      i = state["i"]
      state["params"], state["opt"], value = step(state["params"], state["opt"],
                                                  batches[i % len(batches)], jax.random.key(i))
      state["i"] = i + 1
    jax.block_until_ready(value)
    return time.perf_counter() - start

  return Side("bare jitted Flax step (the floor)", count(params), run)


# ---------------------------------------------------------------- PyTorch sides


def torch_side(name: str, model, loss_fn, batches, learning_rate: float) -> Side:
  import torch
  optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
  position = [0]

  def run(steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      x = batches[position[0] % len(batches)]
      position[0] += 1
      optimizer.zero_grad(set_to_none=True)
      loss = loss_fn(model, x)
      loss.backward()
      optimizer.step()
    float(loss.detach())
    return time.perf_counter() - start

  return Side(name, sum(p.numel() for p in model.parameters()), run)


def torch_mlp_vae(sizes, latent_dim: int, num_pixels: int):
  import torch
  from torch import nn

  def mlp(widths):
    layers = []
    for a, b in zip(widths[:-2], widths[1:-1]):
      layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(widths[-2], widths[-1]))

  model = nn.ModuleDict({"encoder": mlp([num_pixels, *sizes, 2 * latent_dim]),
                         "decoder": mlp([latent_dim, *reversed(sizes), num_pixels])})

  def loss(model, x):
    x = torch.bernoulli(x)  # dynamic binarization, as the gen_jax sides
    mean, log_var = model["encoder"](x).chunk(2, dim=-1)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    logits = model["decoder"](z)
    nll = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = 0.5 * (torch.exp(log_var) + mean**2 - 1.0 - log_var).sum(-1)
    return (nll + kl).mean()

  return model, loss


def torch_conv_vae(channels, latent_dim: int, image_shape):
  """The gen_jax ConvEncoder / ConvDecoder layout in torch (NCHW): stride-2 3x3 convolutions,
  Dense, and stride-2 3x3 transposed convolutions that double the size, Gaussian decoder."""
  import torch
  from torch import nn
  height, width, c = image_shape
  factor = 2 ** len(channels)
  h0, w0 = height // factor, width // factor
  encoder, in_c = [], c
  for ch in channels:
    encoder += [nn.Conv2d(in_c, ch, 3, stride=2, padding=1), nn.ReLU()]
    in_c = ch
  encoder += [nn.Flatten(), nn.Linear(in_c * h0 * w0, 2 * latent_dim)]
  widths = list(reversed(channels))
  decoder = [nn.Linear(latent_dim, h0 * w0 * widths[0]), nn.ReLU(), nn.Unflatten(1, (widths[0], h0, w0))]
  in_c = widths[0]
  for ch in widths:
    decoder += [nn.ConvTranspose2d(in_c, ch, 3, stride=2, padding=1, output_padding=1), nn.ReLU()]
    in_c = ch
  decoder += [nn.Conv2d(in_c, 2 * c, 3, padding=1)]
  model = nn.ModuleDict({"encoder": nn.Sequential(*encoder), "decoder": nn.Sequential(*decoder)})
  log_2pi = float(np.log(2 * np.pi))

  def loss(model, x):
    x = (255.0 * x + torch.rand_like(x)) / 256.0 * 2.0 - 1.0  # dequantize, scale to [-1, 1]
    mean, log_var = model["encoder"](x).chunk(2, dim=-1)
    z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
    out_mean, log_scale = model["decoder"](z).chunk(2, dim=1)
    nll = 0.5 * (log_2pi + 2 * log_scale + (x - out_mean) ** 2 * torch.exp(-2 * log_scale))
    kl = 0.5 * (torch.exp(log_var) + mean**2 - 1.0 - log_var).sum(-1)
    return (nll.flatten(1).sum(-1) + kl).mean()

  return model, loss


def torch_batches(images: np.ndarray, batch_size: int, channels_first: bool):
  import torch
  x = images[: len(images) // batch_size * batch_size].astype(np.float32)
  if channels_first:
    x = x.transpose(0, 3, 1, 2)
  return list(torch.from_numpy(np.ascontiguousarray(x)).split(batch_size))


# ---------------------------------------------------------------- comparisons


def mlp_vae(steps: int, rounds: int):
  import torch
  config = vae_config.get_config("mnist5k")
  with config.unlocked():
    config.train.progress_bar = False
  dataset = load_dataset(config.data)
  images = dataset.train.arrays["x"].astype(np.float32) / 255.0
  torch.manual_seed(0)
  model, loss = torch_mlp_vae(tuple(config.model.sizes), int(config.model.latent_dim),
                              int(np.prod(images.shape[1:])))
  sides = [trainer_side("gen_jax trainer step", config, dataset),
           bare_flax_side(config, images),
           torch_side("PyTorch", model, loss,
                      torch_batches(images.reshape(len(images), -1), int(config.train.batch_size), False),
                      config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"MLP VAE on {config.data.name}, batch {config.train.batch_size}, {steps} steps "
                f"a timing, {rounds} rounds", sides, seconds,
                [(sides[0].name, sides[1].name), (sides[0].name, "PyTorch"), (sides[1].name, "PyTorch")])


def photo_crops_folder(directory: str) -> str:
  """CROPS_PER_PHOTO random CROP_SIDE-pixel crops of each photograph scikit-learn ships,
  written as PNG files (the data of the 32x32x3 comparison)."""
  from PIL import Image
  from sklearn.datasets import load_sample_images
  rng = np.random.default_rng(0)
  for p, photo in enumerate(load_sample_images().images):
    for i in range(CROPS_PER_PHOTO):
      top = rng.integers(0, photo.shape[0] - CROP_SIDE)
      left = rng.integers(0, photo.shape[1] - CROP_SIDE)
      Image.fromarray(photo[top:top + CROP_SIDE, left:left + CROP_SIDE]).save(
          os.path.join(directory, f"photo{p}_crop{i:04d}.png"))
  return directory


def conv_vae(steps: int, rounds: int):
  import torch
  config = vae_config.get_config()
  work = tempfile.mkdtemp(prefix="gen_jax_bench_photos_")
  with config.unlocked():
    config.train.progress_bar = False
    config.data.name = "image_folder"
    config.data.path = photo_crops_folder(work)
    config.data.image_size = 32
    config.data.data_dir = os.path.join(work, "tfds")
    config.data.transforms = ("uniform_dequantize", "scale_to_symmetric")
    config.model.network = "conv"
    config.model.sizes = (32, 64)
    config.model.likelihood = "gaussian"
  dataset = load_dataset(config.data)
  images = dataset.train.arrays["x"].astype(np.float32) / 255.0
  torch.manual_seed(0)
  model, loss = torch_conv_vae(tuple(config.model.sizes), int(config.model.latent_dim), images.shape[1:])
  sides = [trainer_side("gen_jax trainer step", config, dataset),
           torch_side("PyTorch", model, loss, torch_batches(images, int(config.train.batch_size), True),
                      config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"conv VAE 32x32x3 on {len(images)} photograph crops, batch "
                f"{config.train.batch_size}, {steps} steps a timing, {rounds} rounds",
                sides, seconds, [(sides[0].name, "PyTorch")])


COMPARISONS = {"mlp_vae": (mlp_vae, 200), "conv_vae": (conv_vae, 5)}


def run_peers():
  import torch
  torch.set_num_threads(_TORCH_THREADS.value)
  print(f"torch {torch.__version__} at {torch.get_num_threads()} threads")
  names = _ONLY.value or list(COMPARISONS)
  unknown = sorted(set(names) - set(COMPARISONS))
  if unknown:
    raise ValueError(f"unknown --peer_comparisons {unknown}; choose from {sorted(COMPARISONS)}")
  rows = []
  for name in names:
    fn, steps = COMPARISONS[name]
    rows += [(name, *row) for row in fn(steps, _ROUNDS.value)]
  print("\n| comparison | ratio | median | range |\n|---|---|---|---|")
  for name, label, median, low, high in rows:
    print(f"| {name} | {label} | {median:.2f} | {low:.2f}-{high:.2f} |")
