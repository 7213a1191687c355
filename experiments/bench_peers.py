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
- `unet`: the DDPM U-Net of the default diffusion config (283,249 parameters, ε target,
  L_simple, batch 32) on mnist5k: gen_jax's trainer step, the same U-Net written layer for
  layer in PyTorch (`torch_unet`), and diffusers' `UNet2DModel` of the same architecture
  (`diffusers_unet`).
- `realnvp`: a training step of `flows_2d`'s RealNVP (ActNorm + 8 affine couplings, MLPs
  128-128, batch 256) on 8 gaussians against the same architecture in nflows.
- `maf_density`: the log-density of 10,000 points under `flows_2d`'s MAF (ActNorm + 8 MADE
  layers 128-128; MAF's one-pass direction) against nflows.
- `made`: a training step of a MADE 784-1024-1024-784 on binarized mnist5k (batch 64) against
  nflows' MADE of the same widths.
- `conv_layers`: each convolution of the conv VAE and the U-Net alone (forward, input and kernel
  gradients) under XLA and torch: where the two conv rows lose.
- `gmm_2d`, `gmm_64d`, `gmm_scaling`: EM iterations of `mixtures.fit_gmm` against
  scikit-learn's GaussianMixture from the same start (`experiments.bench_gmm`).

Method: interleaved rounds (the order of the sides reversed every other round), a settle pause
before each timing (worker threads of the side before go idle), torch at `--torch_threads`
threads; medians over rounds, with the range of the per-round speed ratios in brackets.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from experiments import bench_gmm
from experiments.configs import diffusion as diffusion_config, flows_2d as flows_2d_config
from experiments.configs import autoregressive_mnist5k as autoregressive_config
from experiments.configs import ebm_2d as ebm_2d_config, ebm_mnist5k as ebm_mnist5k_config
from experiments.configs import gan_mnist5k as gan_mnist5k_config
from experiments.configs import vae as vae_config
from gen_jax import nets
from gen_jax.autoencoders import vae as vae_math
from gen_jax.diffusion import gaussian
from gen_jax.ebm import samplers as ebm_samplers
from gen_jax.nets import diffusion as diffusion_nets
from gen_jax.data import load_dataset
from gen_jax.tasks import autoencoders, autoregressive as autoregressive_task
from gen_jax.tasks import diffusion as diffusion_task, flows as flows_task, gan as gan_task
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
# flax.linen.GroupNorm's default epsilon (torch's is 1e-5).
GROUP_NORM_EPS = 1e-6


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
  steps_per_call = trainer.read_int(config, "train.steps_per_call", 1)
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


def trainer_side(name: str, config, dataset, make_task) -> Side:
  runner, run = train_step_runner(make_task, config, 0, dataset)
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


def torch_unet(image_shape, channels: int, channel_mults, num_res_blocks: int,
                attention_resolutions, num_heads: int):
  """`gen_jax.nets.UNet` layer for layer in torch (NCHW): the same blocks, widths, GroupNorm
  groups and epsilon, attention resolutions and skip connections, so the same parameter count
  (printed). Stride-2 convolutions pad both sides by one where Flax's "SAME" pads one side:
  the same shapes and cost."""
  import torch
  from torch import nn
  functional = torch.nn.functional

  def norm(c):
    return nn.GroupNorm(math.gcd(diffusion_nets.GROUPS, c), c, eps=GROUP_NORM_EPS)

  class ResBlock(nn.Module):
    def __init__(self, c_in, c_out, emb_dim):
      super().__init__()
      self.norm1, self.conv1 = norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
      self.emb = nn.Linear(emb_dim, c_out)
      self.norm2, self.conv2 = norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
      self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
      h = self.conv1(functional.silu(self.norm1(x)))
      h = h + self.emb(functional.silu(emb))[:, :, None, None]
      h = self.conv2(functional.silu(self.norm2(h)))
      return self.skip(x) + h

  class Attention(nn.Module):
    def __init__(self, c):
      super().__init__()
      self.norm, self.attn = norm(c), nn.MultiheadAttention(c, num_heads, batch_first=True)

    def forward(self, x):
      b, c, height, width = x.shape
      h = self.norm(x).flatten(2).transpose(1, 2)
      h = self.attn(h, h, h, need_weights=False)[0]
      return x + h.transpose(1, 2).reshape(b, c, height, width)

  class Stage(nn.Module):  # a residual block, then attention at the listed resolutions
    def __init__(self, c_in, c_out, emb_dim, size):
      super().__init__()
      self.block = ResBlock(c_in, c_out, emb_dim)
      self.attn = Attention(c_out) if size in attention_resolutions else nn.Identity()

    def forward(self, x, emb):
      return self.attn(self.block(x, emb))

  class UNet(nn.Module):
    def __init__(self):
      super().__init__()
      size, _, c_image = image_shape
      dim, c = 4 * channels, channels
      self.dim = dim
      self.emb1, self.emb2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
      self.conv_in = nn.Conv2d(c_image, c, 3, padding=1)
      self.down, widths = nn.ModuleList(), [c]
      for level, mult in enumerate(channel_mults):
        for _ in range(num_res_blocks):
          self.down.append(Stage(c, mult * channels, dim, size))
          c = mult * channels
          widths.append(c)
        if level != len(channel_mults) - 1:
          self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
          widths.append(c)
          size //= 2
      self.mid1, self.mid_attn, self.mid2 = ResBlock(c, c, dim), Attention(c), ResBlock(c, c, dim)
      self.up = nn.ModuleList()
      for level, mult in reversed(list(enumerate(channel_mults))):
        for _ in range(num_res_blocks + 1):
          self.up.append(Stage(c + widths.pop(), mult * channels, dim, size))
          c = mult * channels
        if level != 0:
          self.up.append(nn.Conv2d(c, c, 3, padding=1))  # after a nearest 2x upsampling
          size *= 2
      self.norm_out, self.conv_out = norm(c), nn.Conv2d(c, c_image, 3, padding=1)

    def forward(self, x, time):
      half = self.dim // 2
      freqs = torch.exp(-math.log(diffusion_nets.MAX_PERIOD) * torch.arange(half) / half)
      args = time[:, None] * freqs[None]
      emb = self.emb2(functional.silu(self.emb1(torch.cat([torch.sin(args), torch.cos(args)], -1))))
      h = self.conv_in(x)
      skips = [h]
      for module in self.down:
        h = module(h) if isinstance(module, nn.Conv2d) else module(h, emb)
        skips.append(h)
      h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
      for module in self.up:
        if isinstance(module, nn.Conv2d):
          h = module(functional.interpolate(h, scale_factor=2, mode="nearest"))
        else:
          h = module(torch.cat([h, skips.pop()], 1), emb)
      return self.conv_out(functional.silu(self.norm_out(h)))

  return UNet()


def torch_ddpm_loss(betas: np.ndarray):
  """L_simple of the ε target (Ho et al. 2020): E ||ε − ε_θ(x_t, t)||², per pixel, with
  x_t = √ᾱ_t x + √(1 − ᾱ_t) ε and t uniform on 0..T-1."""
  import torch
  num_timesteps = len(betas)
  alpha_bars = torch.cumprod(1.0 - torch.tensor(np.asarray(betas), dtype=torch.float32), 0)

  def loss(model, x):
    t = torch.randint(0, num_timesteps, (x.shape[0],))
    noise = torch.randn_like(x)
    a = alpha_bars[t][:, None, None, None]
    x_t = torch.sqrt(a) * (2.0 * x - 1.0) + torch.sqrt(1.0 - a) * noise
    return ((model(x_t, t.float()) - noise) ** 2).mean()

  return loss


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
  sides = [trainer_side("gen_jax trainer step", config, dataset, autoencoders.make_task),
           bare_flax_side(config, images),
           torch_side("PyTorch", model, loss,
                      torch_batches(images.reshape(len(images), -1), int(config.train.batch_size), False),
                      config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"MLP VAE on {config.data.name}, batch {config.train.batch_size}, {steps} steps "
                f"a timing, {rounds} rounds", sides, seconds,
                [(sides[0].name, sides[1].name), (sides[0].name, "PyTorch"), (sides[1].name, "PyTorch")])


def trainer_against_torch(title: str, config, dataset, make_task, model, loss, images: np.ndarray,
                          steps: int, rounds: int):
  """gen_jax's trainer step against a torch model and loss on the same images (NHWC in [0, 1];
  torch gets them NCHW) at the config's batch size and learning rate."""
  sides = [trainer_side("gen_jax trainer step", config, dataset, make_task),
           torch_side("PyTorch", model, loss, torch_batches(images, int(config.train.batch_size), True),
                      config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"{title}, batch {config.train.batch_size}, {steps} steps a timing, {rounds} rounds",
                sides, seconds, [(sides[0].name, "PyTorch")])


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
  return trainer_against_torch(f"conv VAE 32x32x3 on {len(images)} photograph crops", config,
                               dataset, autoencoders.make_task, model, loss, images, steps, rounds)


def diffusers_unet(image_shape, channels: int, channel_mults, num_res_blocks: int,
                   attention_resolutions, num_heads: int):
  """diffusers' `UNet2DModel` configured as `gen_jax.nets.UNet`: the same widths, residual
  blocks per level, stride-2 convolutions down, nearest + conv up, attention at the same
  resolutions and in the middle, GroupNorm groups and ε. Its time embedding starts from a
  C-wide sinusoid where gen_jax's starts from a 4C-wide one (3·C·4C fewer weights)."""
  import torch
  from diffusers import UNet2DModel
  size, _, c_image = image_shape
  widths, down, up = [], [], []
  for level, mult in enumerate(channel_mults):
    widths.append(mult * channels)
    attention = (size >> level) in attention_resolutions
    down.append("AttnDownBlock2D" if attention else "DownBlock2D")
    up.insert(0, "AttnUpBlock2D" if attention else "UpBlock2D")
  network = UNet2DModel(sample_size=size, in_channels=c_image, out_channels=c_image,
                        block_out_channels=tuple(widths), layers_per_block=num_res_blocks,
                        down_block_types=tuple(down), up_block_types=tuple(up),
                        norm_num_groups=math.gcd(diffusion_nets.GROUPS, channels), norm_eps=GROUP_NORM_EPS,
                        attention_head_dim=widths[-1] // num_heads, downsample_padding=1)

  class Wrapped(torch.nn.Module):  # model(x_t, t) -> ε̂, as torch_ddpm_loss calls it
    def __init__(self):
      super().__init__()
      self.network = network

    def forward(self, x, time):
      return self.network(x, time).sample

  return Wrapped()


def unet(steps: int, rounds: int):
  """The DDPM U-Net: gen_jax's trainer step against the same U-Net written layer for layer in
  PyTorch and against diffusers' UNet2DModel of the same architecture."""
  import torch
  config = diffusion_config.get_config()
  with config.unlocked():
    config.train.progress_bar = False
  dataset = load_dataset(config.data)
  images = dataset.train.arrays["x"].astype(np.float32) / 255.0
  m = config.model
  architecture = (images.shape[1:], int(m.channels), tuple(m.channel_mults), int(m.num_res_blocks),
                  tuple(m.attention_resolutions), int(m.num_heads))
  loss = torch_ddpm_loss(np.asarray(gaussian.linear_betas(int(m.num_timesteps))))
  batches = torch_batches(images, int(config.train.batch_size), True)
  torch.manual_seed(0)
  sides = [trainer_side("gen_jax trainer step", config, dataset, diffusion_task.make_task),
           torch_side("PyTorch", torch_unet(*architecture), loss, batches, config.optim.learning_rate),
           torch_side("diffusers", diffusers_unet(*architecture), loss, batches, config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"DDPM U-Net on {config.data.name} (eps target, L_simple), batch "
                f"{config.train.batch_size}, {steps} steps a timing, {rounds} rounds", sides, seconds,
                [(sides[0].name, "PyTorch"), (sides[0].name, "diffusers")])


def nflows_realnvp(num_layers: int, hidden_sizes, dim: int = 2):
  """RealNVP in nflows, as `flows_2d`'s realnvp: ActNorm, then affine couplings with alternating
  masks whose MLPs map the passed-through entries to the others' shifts and scales (nflows'
  scale is sigmoid(s + 2) + 1e-3 where gen_jax's is exp(3 tanh(s/3)): the same cost)."""
  import torch
  from nflows import distributions, flows, transforms
  from nflows.nn.nets import MLP

  class Conditioner(torch.nn.Module):  # nflows calls net(x, context)
    def __init__(self, n_in, n_out):
      super().__init__()
      self.mlp = MLP((n_in,), (n_out,), list(hidden_sizes))

    def forward(self, x, context=None):
      return self.mlp(x)

  layers = [transforms.ActNorm(dim)]
  for i in range(num_layers):
    mask = torch.tensor([1 if (j % 2) != (i % 2) else 0 for j in range(dim)])  # 1: transformed
    layers.append(transforms.AffineCouplingTransform(mask, Conditioner))
  return flows.Flow(transforms.CompositeTransform(layers), distributions.StandardNormal([dim]))


def nflows_maf(num_layers: int, hidden_sizes, dim: int = 2):
  """MAF in nflows, as `flows_2d`'s maf: ActNorm, then MADE affine layers (two hidden layers
  of the same width) with the order reversed between layers."""
  from nflows import distributions, flows, transforms
  width = hidden_sizes[0]
  layers = [transforms.ActNorm(dim)]
  for _ in range(num_layers):
    layers += [transforms.MaskedAffineAutoregressiveTransform(
        dim, width, num_blocks=len(hidden_sizes) - 1, use_residual_blocks=False),
               transforms.ReversePermutation(dim)]
  return flows.Flow(transforms.CompositeTransform(layers), distributions.StandardNormal([dim]))


def flow_config(kind: str):
  config = flows_2d_config.get_config()
  with config.unlocked():
    config.train.progress_bar = False
    config.model.kind = kind
  return config


def realnvp(steps: int, rounds: int):
  """A training step of the 2-D RealNVP (8 couplings, MLPs 128-128, batch 256, 8 gaussians)."""
  import torch
  config = flow_config("realnvp")
  dataset = load_dataset(config.data)
  points = dataset.train.arrays["x"].astype(np.float32)
  torch.manual_seed(0)
  model = nflows_realnvp(int(config.model.num_layers), tuple(config.model.hidden_sizes))
  model.log_prob(torch.from_numpy(points[:1000]))  # nflows' ActNorm: data-dependent init
  batch_size = int(config.train.batch_size)
  batches = [torch.from_numpy(points[i:i + batch_size])
             for i in range(0, len(points) - batch_size + 1, batch_size)]
  sides = [trainer_side("gen_jax trainer step", config, dataset, flows_task.make_task),
           torch_side("nflows (PyTorch)", model, lambda m, x: -m.log_prob(x).mean(), batches,
                      config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"RealNVP on {config.data.name}, batch {batch_size}, {steps} steps a timing, "
                f"{rounds} rounds", sides, seconds, [(sides[0].name, sides[1].name)])


def maf_density(steps: int, rounds: int):
  """log p(x) of 10,000 points under the 2-D MAF (8 MADE layers 128-128): MAF's fast direction."""
  import torch
  config = flow_config("maf")
  dataset = load_dataset(config.data)
  points = dataset.test.arrays["x"].astype(np.float32)
  task = flows_task.make_task(config, dataset)
  params = task.init(jax.random.key(0), jnp.asarray(points[:1]))
  log_prob = jax.jit(lambda p, x: task.density.fn(p, x, None))
  x = jnp.asarray(points)
  torch.manual_seed(0)
  model = nflows_maf(int(config.model.num_layers), tuple(config.model.hidden_sizes))
  x_torch = torch.from_numpy(points)
  model.log_prob(x_torch[:1000])  # ActNorm's data-dependent init

  def run_jax(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      out = log_prob(params, x)
    jax.block_until_ready(out)
    return time.perf_counter() - start

  def run_torch(n: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
      for _ in range(n):
        out = model.log_prob(x_torch)
    float(out[0])
    return time.perf_counter() - start

  sides = [Side("gen_jax jitted log_prob", count(params), run_jax),
           Side("nflows (PyTorch) log_prob", sum(p.numel() for p in model.parameters()), run_torch)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"MAF density of {len(points):,} points, {steps} evaluations a timing, {rounds} rounds",
                sides, seconds, [(sides[0].name, sides[1].name)])


def made(steps: int, rounds: int):
  """A training step of the binarized-mnist5k MADE (784-1024-1024-784, Bernoulli outputs,
  batch 64, Adam) against nflows' MADE of the same widths (`num_blocks=1`: its masked layers
  784->1024, ReLU, 1024->1024, then 1024->784 with no ReLU before it, where gen_jax has one:
  the same parameters and matrix products), each binarizing its batch in the step."""
  import torch
  from nflows.transforms.made import MADE as NflowsMADE
  config = autoregressive_config.get_config()
  with config.unlocked():
    config.train.progress_bar = False
    config.model.kind = "made"
    config.model.hidden_sizes = (1024, 1024)
  dataset = load_dataset(config.data)
  images = dataset.train.arrays["x"].reshape(len(dataset.train), -1).astype(np.float32) / 255.0
  torch.manual_seed(0)
  width = config.model.hidden_sizes[0]
  model = NflowsMADE(images.shape[1], width, num_blocks=len(config.model.hidden_sizes) - 1,
                     use_residual_blocks=False)

  def loss(m, x):
    x = torch.bernoulli(x)
    return torch.nn.functional.binary_cross_entropy_with_logits(m(x), x, reduction="none").sum(1).mean()

  sides = [trainer_side("gen_jax trainer step", config, dataset, autoregressive_task.make_task),
           torch_side("nflows MADE (PyTorch)", model, loss,
                      torch_batches(images, int(config.train.batch_size), False), config.optim.learning_rate)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"MADE on binarized {config.data.name}, batch {config.train.batch_size}, {steps} steps a "
                f"timing, {rounds} rounds", sides, seconds, [(sides[0].name, sides[1].name)])


def chained_sampler_timer(sample, x0, key, steps_per_call: int):
  """run(n) -> seconds for n sampler steps: n / steps_per_call calls of the compiled
  sample(x, key) (steps_per_call steps each), each call continuing the last one's chains."""
  def run(n: int) -> float:
    start, x = time.perf_counter(), x0
    for i in range(max(1, n // steps_per_call)):
      x = sample(x, jax.random.fold_in(key, i))
    jax.block_until_ready(x)
    return time.perf_counter() - start

  return run


def ebm_conv_energy_pair(channels, image_shape):
  """The mnist5k EBM's conv energy in Flax and the same layers in PyTorch (3x3 convolutions, a
  stride-2 one after each, swish, a sum over positions, a linear read-out)."""
  import torch
  energy = nets.ConvEnergy(tuple(channels))
  layers, in_channels = [], image_shape[-1]
  for width in channels:
    layers += [torch.nn.Conv2d(in_channels, width, 3, padding=1), torch.nn.SiLU(),
               torch.nn.Conv2d(width, width, 3, stride=2, padding=1), torch.nn.SiLU()]
    in_channels = width

  class TorchEnergy(torch.nn.Module):
    def __init__(self):
      super().__init__()
      self.body = torch.nn.Sequential(*layers)
      self.head = torch.nn.Linear(in_channels, 1)

    def forward(self, x):
      return self.head(self.body(x).sum(dim=(2, 3)))[:, 0]

  return energy, TorchEnergy()


def langevin_conv(steps: int, rounds: int):
  """ULA steps (∇_x E, then x - η∇E + √(2η) ω, clipped to [0, 1]) on the mnist5k EBM's conv
  energy for one batch of chains: gen_jax's compiled loop (ebm.samplers.run_langevin, `steps`
  steps per call) against the same energy and update in PyTorch (autograd.grad per step)."""
  import torch
  config = ebm_mnist5k_config.get_config()
  image_shape = (28, 28, 1)
  num_chains, eta = int(config.train.batch_size), float(config.sampler.step_size)
  energy, torch_energy = ebm_conv_energy_pair(config.model.channels, image_shape)
  x0 = np.random.default_rng(0).uniform(size=(num_chains, *image_shape)).astype(np.float32)
  params = energy.init(jax.random.key(0), jnp.asarray(x0[:1]))
  run = jax.jit(lambda p, x, k: ebm_samplers.run_langevin(lambda z: energy.apply(p, z), x, k, steps, eta,
                                                           bounds=(0.0, 1.0)).x)
  key = jax.random.key(1)
  jax.block_until_ready(run(params, jnp.asarray(x0), key))  # compiled before the timing
  run_jax = chained_sampler_timer(lambda x, k: run(params, x, k), jnp.asarray(x0), key, steps)

  x_torch = torch.from_numpy(x0).permute(0, 3, 1, 2).contiguous()

  def run_torch(n: int) -> float:
    start, x = time.perf_counter(), x_torch.clone()
    for _ in range(max(1, n // steps) * steps):
      x = x.detach().requires_grad_(True)
      grad, = torch.autograd.grad(torch_energy(x).sum(), x)
      x = (x - eta * grad + math.sqrt(2 * eta) * torch.randn_like(x)).clamp(0.0, 1.0)
    float(x.detach()[0, 0, 0, 0])
    return time.perf_counter() - start

  sides = [Side("gen_jax run_langevin (compiled loop)", count(params), run_jax),
           Side("PyTorch Langevin loop", sum(p.numel() for p in torch_energy.parameters()), run_torch)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"Langevin on the mnist5k conv energy {tuple(config.model.channels)}, {num_chains} chains, "
                f"{steps} steps a timing, {rounds} rounds", sides, seconds, [(sides[0].name, sides[1].name)])


def mala_blackjax(steps: int, rounds: int):
  """MALA on the same 2-D energy (the ebm_2d MLP energy, 128-128 swish, at its initial
  parameters), 1,000 chains, one compiled loop of `steps` steps per call each: gen_jax's
  run_mala against BlackJAX's mala kernel vmapped over the chains in a lax.scan."""
  import blackjax
  config = ebm_2d_config.get_config()
  num_chains, eta = 1_000, float(config.sampler.step_size)
  energy = nets.MLPEnergy(tuple(config.model.hidden_sizes))
  x0 = jnp.asarray(np.random.default_rng(0).normal(size=(num_chains, 2)).astype(np.float32))
  params = energy.init(jax.random.key(0), x0[:1])
  ours = jax.jit(lambda x, k: ebm_samplers.run_mala(lambda z: energy.apply(params, z), x, k, steps, eta).x)
  logdensity = lambda z: -energy.apply(params, z[None])[0]
  kernel = blackjax.mala(logdensity, eta)

  @jax.jit
  def theirs(x, key):
    states = jax.vmap(kernel.init)(x)

    def body(states, k):
      states, _ = jax.vmap(kernel.step)(jax.random.split(k, num_chains), states)
      return states, None

    states, _ = jax.lax.scan(body, states, jax.random.split(key, steps))
    return states.position

  key = jax.random.key(1)
  jax.block_until_ready((ours(x0, key), theirs(x0, key)))

  sides = [Side("gen_jax run_mala", count(params), chained_sampler_timer(ours, x0, key, steps)),
           Side(f"BlackJAX {blackjax.__version__} mala (vmapped)", count(params),
                chained_sampler_timer(theirs, x0, key, steps))]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"MALA on the ebm_2d MLP energy, {num_chains} chains, {steps} steps a timing, {rounds} rounds",
                sides, seconds, [(sides[0].name, sides[1].name)])


def torch_dcgan(image_shape, channels: int, latent_dim: int):
  """gan_mnist5k's players in PyTorch: G z -> Linear -> (2c, H/4, W/4) -> BN, ReLU, 4x4 transposed
  conv stride 2 (c) -> BN, ReLU, 4x4 transposed conv stride 2 (C) -> sigmoid; D 4x4 conv stride 2
  (c), LeakyReLU(0.2), 4x4 conv stride 2 (2c), LeakyReLU(0.2), Linear -> 1."""
  import torch
  h, w, c_out = image_shape
  nn = torch.nn

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      self.fc = nn.Linear(latent_dim, (h // 4) * (w // 4) * 2 * channels)
      self.body = nn.Sequential(nn.BatchNorm2d(2 * channels), nn.ReLU(),
                                nn.ConvTranspose2d(2 * channels, channels, 4, 2, 1), nn.BatchNorm2d(channels),
                                nn.ReLU(), nn.ConvTranspose2d(channels, c_out, 4, 2, 1), nn.Sigmoid())

    def forward(self, z):
      return self.body(self.fc(z).view(z.shape[0], 2 * channels, h // 4, w // 4))

  discriminator = nn.Sequential(nn.Conv2d(c_out, channels, 4, 2, 1), nn.LeakyReLU(0.2),
                                nn.Conv2d(channels, 2 * channels, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(),
                                nn.Linear(2 * channels * (h // 4) * (w // 4), 1))
  return Generator(), discriminator


def dcgan(steps: int, rounds: int):
  """A DCGAN training step (one discriminator and one generator update, the non-saturating loss,
  Adam for both) on mnist5k at gan_mnist5k's shapes: gen_jax's trainer step against the same
  players and losses in PyTorch."""
  import torch
  config = gan_mnist5k_config.get_config()
  with config.unlocked():
    config.train.progress_bar = False
  dataset = load_dataset(config.data)
  images = dataset.train.arrays["x"].astype(np.float32) / 255.0
  generator, discriminator = torch_dcgan(tuple(dataset.element_shape), int(config.model.channels),
                                         int(config.model.latent_dim))
  g_opt = torch.optim.Adam(generator.parameters(), lr=config.optim.generator.learning_rate, betas=(0.5, 0.999))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=config.optim.discriminator.learning_rate,
                           betas=(0.5, 0.999))
  batches = torch_batches(images, int(config.train.batch_size), True)
  softplus = torch.nn.functional.softplus
  position = [0]

  def run_torch(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      real = batches[position[0] % len(batches)]
      position[0] += 1
      z = torch.randn(real.shape[0], int(config.model.latent_dim))
      with torch.no_grad():
        fake = generator(z)
      d_opt.zero_grad(set_to_none=True)
      d_loss = softplus(-discriminator(real)).mean() + softplus(discriminator(fake)).mean()
      d_loss.backward()
      d_opt.step()
      g_opt.zero_grad(set_to_none=True)
      g_loss = softplus(-discriminator(generator(torch.randn_like(z)))).mean()
      g_loss.backward()
      g_opt.step()
    float(g_loss.detach())
    return time.perf_counter() - start

  torch_params = sum(p.numel() for m in (generator, discriminator) for p in m.parameters())
  sides = [trainer_side("gen_jax trainer step (both players)", config, dataset, gan_task.make_task),
           Side("PyTorch DCGAN step (both players)", torch_params, run_torch)]
  seconds = interleaved_rounds(sides, steps, rounds)
  return report(f"DCGAN on {config.data.name}, batch {config.train.batch_size}, {steps} steps a timing, "
                f"{rounds} rounds", sides, seconds, [(sides[0].name, sides[1].name)])


# The convolutions of the conv VAE and the U-Net, one layer at a time at the networks' batch
# sizes: (label, batch, size, C_in, C_out, kernel, stride). The sub-pixel upsampling layers are
# the 2x2 stride-1 convolutions to 4x the channels that `nets.layers.SubpixelConvTranspose` runs.
CONV_LAYERS = (("conv VAE encoder 3x3/2, 3->32 at 32px", 100, 32, 3, 32, 3, 2),
               ("conv VAE encoder 3x3/2, 32->64 at 16px", 100, 16, 32, 64, 3, 2),
               ("conv VAE sub-pixel 2x2, 64->256 at 8px", 100, 8, 64, 256, 2, 1),
               ("conv VAE sub-pixel 2x2, 64->128 at 16px", 100, 16, 64, 128, 2, 1),
               ("conv VAE output 3x3, 32->6 at 32px", 100, 32, 32, 6, 3, 1),
               ("U-Net 3x3, 16->16 at 28px", 32, 28, 16, 16, 3, 1),
               ("U-Net 3x3, 32->32 at 14px", 32, 14, 32, 32, 3, 1))


def conv_layer_pair(batch: int, size: int, c_in: int, c_out: int, kernel: int, stride: int):
  """(gen_jax side, torch side) of one convolution's forward and backward (input and kernel
  gradients of Σ y·g) on the same data: XLA's `conv_general_dilated` (NHWC, HWIO) jitted, and
  torch's `conv2d` (NCHW)."""
  import torch
  rng = np.random.default_rng(0)
  x = rng.normal(size=(batch, size, size, c_in)).astype(np.float32)
  w = (0.1 * rng.normal(size=(kernel, kernel, c_in, c_out))).astype(np.float32)
  pad = (kernel - 1) // 2 if stride == 1 else 1
  jax_pad = ((0, 1), (0, 1)) if stride == 2 else (((1, 0), (1, 0)) if kernel == 2 else ((pad, pad), (pad, pad)))

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), jax_pad,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  g = np.ones(jax.eval_shape(conv, x, w).shape, np.float32)
  grads = jax.jit(jax.grad(lambda x, w, g: jnp.sum(conv(x, w) * g), argnums=(0, 1)))
  xj, wj, gj = jnp.asarray(x), jnp.asarray(w), jnp.asarray(g)

  def run_jax(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      out = grads(xj, wj, gj)
    jax.block_until_ready(out)
    return time.perf_counter() - start

  xt = torch.tensor(x.transpose(0, 3, 1, 2).copy(), requires_grad=True)
  wt = torch.tensor(w.transpose(3, 2, 0, 1).copy(), requires_grad=True)
  functional = torch.nn.functional

  def torch_conv(x):
    if kernel == 2:
      return functional.conv2d(functional.pad(x, (1, 0, 1, 0)), wt)
    return functional.conv2d(x, wt, stride=stride, padding=pad)

  gt = torch.ones_like(torch_conv(xt))

  def run_torch(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
      torch.autograd.grad(torch_conv(xt), (xt, wt), gt)
    return time.perf_counter() - start

  return Side("gen_jax (XLA)", w.size, run_jax), Side("PyTorch", w.size, run_torch)


def conv_layers(steps: int, rounds: int):
  rows = []
  for label, *shape in CONV_LAYERS:
    sides = list(conv_layer_pair(*shape))
    seconds = interleaved_rounds(sides, steps, rounds)
    ratios = report(f"{label}, batch {shape[0]}: forward + both gradients, {steps} calls a timing, "
                    f"{rounds} rounds", sides, seconds, [(sides[0].name, "PyTorch")])
    rows += [(f"{label}: {name}", *values) for name, *values in ratios]
  return rows


COMPARISONS = {"mlp_vae": (mlp_vae, 200), "conv_vae": (conv_vae, 5), "unet": (unet, 10),
               "realnvp": (realnvp, 200), "maf_density": (maf_density, 20), "made": (made, 100),
               "langevin_conv": (langevin_conv, 20), "mala_blackjax": (mala_blackjax, 500),
               "dcgan": (dcgan, 10), "conv_layers": (conv_layers, 10),
               "gmm_2d": (lambda steps, rounds: bench_gmm.compare("EM", 1_000_000, 2, 8, steps, rounds), 10),
               "gmm_64d": (lambda steps, rounds: bench_gmm.compare("EM", 100_000, 64, 10, steps, rounds), 10),
               "gmm_scaling": (bench_gmm.scaling, 10)}


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
