"""Flow networks: MADE, coupling conditioners, and flow layers that hold the parameters of the
bijectors in `gen_jax.flows.bijectors` (the math lives there).

Every flow layer is a module called as `layer(x, generate=False)`: the density direction
(data -> noise, the bijector's inverse) by default, the generative direction (the bijector's
forward) with `generate=True`; both return (output, log|det| of that direction) per example.
A `Flow` lists its layers in density order: layer 0 sees the data.
"""

from __future__ import annotations

from typing import Callable, Mapping, Optional, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from gen_jax.flows import bijectors as bij
from gen_jax.flows.dequantization import PIXEL_MAX

# RealNVP's log-scale soft clamp: s = SCALE_CLAMP · tanh(raw / SCALE_CLAMP), |s| < SCALE_CLAMP,
# so that one coupling layer cannot blow up early in training.
SCALE_CLAMP = 3.0


def made_degrees(dim: int, hidden_sizes: Sequence[int], order: Optional[Sequence[int]] = None):
  """MADE's degrees (Germain et al. 2015): input j gets its position in `order` (1..D; identity
  by default), hidden units cycle through 1..D-1, so output i sees exactly inputs of lower degree."""
  order = np.arange(dim) if order is None else np.asarray(order)
  inputs = np.empty(dim, np.int64)
  inputs[order] = np.arange(1, dim + 1)
  hidden = [np.arange(h) % max(1, dim - 1) + 1 for h in hidden_sizes]
  return inputs, hidden


def made_masks(dim: int, hidden_sizes: Sequence[int], order: Optional[Sequence[int]] = None):
  """(in, out) 0/1 masks of every layer: hidden m_k ≥ m_j; output i from hidden j iff d_i > m_j."""
  inputs, hidden = made_degrees(dim, hidden_sizes, order)
  degrees = [inputs] + hidden
  masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32)
           for d_in, d_out in zip(degrees[:-1], degrees[1:])]
  masks.append((inputs[None, :] > degrees[-1][:, None]).astype(np.float32))
  return masks


class MaskedDense(nn.Module):
  """x @ (kernel ⊙ mask) + bias, with the (in, out) 0/1 mask given by `mask_fn`."""
  mask_fn: Callable[[], np.ndarray]   # () -> (in, out) mask: static, made at trace time
  zero_init: bool = False

  @nn.compact
  def __call__(self, x):
    mask = jnp.asarray(self.mask_fn(), x.dtype)
    init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
    kernel = self.param("kernel", init, mask.shape, x.dtype)
    bias = self.param("bias", nn.initializers.zeros, mask.shape[1:], x.dtype)
    return x @ (kernel * mask) + bias


class MADE(nn.Module):
  """Masked autoencoder for distribution estimation on (batch, D): output i depends only on
  inputs before it in `order` (identity by default). Returns (batch, D) logits, or
  (batch, D, params_per_dim) when `params_per_dim` is given (a flow's transform parameters)."""
  hidden_sizes: Sequence[int]
  params_per_dim: Optional[int] = None
  order: Optional[Sequence[int]] = None
  activation: Callable = nn.relu
  zero_init_output: bool = False

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    hidden = tuple(self.hidden_sizes)
    order = None if self.order is None else tuple(self.order)
    per_dim = self.params_per_dim or 1
    *hidden_masks, out_mask = made_masks(dim, hidden, order)
    h = x
    for mask in hidden_masks:
      h = self.activation(MaskedDense(lambda mask=mask: mask)(h))
    out_mask = np.repeat(out_mask, per_dim, axis=1)
    out = MaskedDense(lambda: out_mask, self.zero_init_output, name="output")(h)
    # Columns are grouped by dimension: (i, p) at column i·P + p.
    if self.params_per_dim is None:
      return out
    return out.reshape(*x.shape, per_dim)


class ConditionerMLP(nn.Module):
  """θ for a coupling layer on vectors: an MLP from the entries the mask passes through (its
  1s) to the parameters of the others, as (batch, D, P) with zeros at the passed-through
  entries. The output layer is zero-initialised, so the flow starts as the identity."""
  hidden_sizes: Sequence[int]
  params_per_dim: int
  mask: Sequence[float]

  @nn.compact
  def __call__(self, x):
    mask = np.asarray(self.mask)
    inputs, outputs = np.flatnonzero(mask > 0), np.flatnonzero(mask == 0)
    h = x[..., inputs]
    for width in self.hidden_sizes:
      h = nn.relu(nn.Dense(width)(h))
    out = nn.Dense(len(outputs) * self.params_per_dim, kernel_init=nn.initializers.zeros)(h)
    theta = jnp.zeros(x.shape + (self.params_per_dim,), x.dtype)
    return theta.at[..., outputs, :].set(out.reshape(*x.shape[:-1], len(outputs), self.params_per_dim))


class ConditionerCNN(nn.Module):
  """θ(x_masked) for images: 3x3 conv, 1x1 conv, zero-initialised 3x3 conv to C·P channels
  (Glow's coupling network), returning (..., H, W, C, P)."""
  channels: int
  params_per_dim: int

  @nn.compact
  def __call__(self, x):
    h = nn.relu(nn.Conv(self.channels, (3, 3), padding="SAME")(x))
    h = nn.relu(nn.Conv(self.channels, (1, 1))(h))
    out = nn.Conv(x.shape[-1] * self.params_per_dim, (3, 3), padding="SAME",
                  kernel_init=nn.initializers.zeros)(h)
    return out.reshape(*x.shape, self.params_per_dim)


def clamp_log_scale(theta):
  """Affine θ = (t, s) with s soft-clamped to (-SCALE_CLAMP, SCALE_CLAMP)."""
  return theta.at[..., 1].set(SCALE_CLAMP * jnp.tanh(theta[..., 1] / SCALE_CLAMP))


def _run(bijector: bij.Bijector, params, x, generate: bool):
  if generate:
    return bijector.forward_and_log_det(params, x)
  return bijector.inverse_and_log_det(params, x)


def run_layers(layers: Sequence[nn.Module], x, generate: bool = False):
  """Layers in density order applied to x (in reverse with `generate`); (output, Σ log-dets)."""
  total = jnp.zeros(x.shape[:1], x.dtype)
  for layer in (reversed(layers) if generate else layers):
    x, log_det = layer(x, generate)
    total = total + log_det
  return x, total


def elementwise_transform(name: str, num_bins: int, bound: float):
  """(transform, θ post-processing) for a layer's "affine" (log-scale soft-clamped),
  "additive" or "spline" transform."""
  if name not in ELEMENTWISE_TRANSFORMS:
    raise ValueError(f"unknown flow transform {name!r}; choose one of {sorted(ELEMENTWISE_TRANSFORMS)}")
  transform = ELEMENTWISE_TRANSFORMS[name](num_bins, bound)
  return transform, (clamp_log_scale if name == "affine" else (lambda theta: theta))


ELEMENTWISE_TRANSFORMS: Mapping[str, Callable[[int, float], bij.ElementwiseTransform]] = {
    "affine": lambda num_bins, bound: bij.AFFINE,
    "additive": lambda num_bins, bound: bij.ADDITIVE,
    "spline": bij.spline,
}


class ActNorm(nn.Module):
  """Per-channel affine layer with Glow's data-dependent init on the first batch it sees."""
  event_ndims: int = 1

  @nn.compact
  def __call__(self, x, generate: bool = False):
    initial = bij.actnorm_init(x) if self.is_initializing() and not generate else None
    c = x.shape[-1]
    bias = self.param("bias", lambda _: initial["bias"] if initial else jnp.zeros(c, x.dtype))
    log_scale = self.param("log_scale",
                           lambda _: initial["log_scale"] if initial else jnp.zeros(c, x.dtype))
    return _run(bij.actnorm(self.event_ndims), {"bias": bias, "log_scale": log_scale}, x, generate)


class InvertibleLinear(nn.Module):
  """Glow's invertible 1x1 convolution (or, on vectors, an invertible linear map): LU form
  W = P·L·(U + diag(sign·e^s)) from a random rotation (P and sign fixed by `seed`), or the
  plain matrix with `lu=False`."""
  event_ndims: int = 3
  lu: bool = True
  seed: int = 0

  @nn.compact
  def __call__(self, x, generate: bool = False):
    c = x.shape[-1]
    trainable, constants = bij.conv1x1_lu_init(np.random.default_rng(self.seed), c)
    if self.lu:
      params = {name: self.param(name, lambda _, v=value: jnp.asarray(v, x.dtype))
                for name, value in trainable.items()}
      params.update({name: np.asarray(v) for name, v in constants.items()})
    else:  # the same rotation as one plain matrix
      params = {"weight": self.param("weight", lambda _: bij.conv1x1_weight(
          {**trainable, **constants}).astype(x.dtype))}
    return _run(bij.conv1x1(self.event_ndims), params, x, generate)


class Coupling(nn.Module):
  """A coupling layer: `transform` ("affine", "additive" or "spline") of the entries where the
  mask is 0, conditioned on the others; mask "checkerboard" or "channel" with a parity."""
  transform: str = "affine"
  mask: str = "checkerboard"
  parity: int = 0
  hidden_sizes: Sequence[int] = (64, 64)
  num_bins: int = 8
  bound: float = 4.0

  @nn.compact
  def __call__(self, x, generate: bool = False):
    event_ndims = 1 if x.ndim == 2 else 3
    event_shape = x.shape[x.ndim - event_ndims:]
    mask = (bij.checkerboard_mask if self.mask == "checkerboard" else bij.channel_mask)(
        event_shape, self.parity)
    transform, post = elementwise_transform(self.transform, self.num_bins, self.bound)
    p = transform.num_params
    net = (ConditionerMLP(tuple(self.hidden_sizes), p, tuple(float(v) for v in mask))
           if event_ndims == 1 else ConditionerCNN(self.hidden_sizes[0], p))
    layer = bij.coupling(mask, lambda _, xm: post(net(xm)), transform, event_ndims)
    return _run(layer, None, x, generate)


class Autoregressive(nn.Module):
  """MAF (`inverse=False`) or IAF (`inverse=True`) layer with an affine or spline transform
  whose parameters come from a MADE (order: identity, or reversed with `reverse_order`)."""
  hidden_sizes: Sequence[int] = (64, 64)
  transform: str = "affine"
  inverse: bool = False
  reverse_order: bool = False
  num_bins: int = 8
  bound: float = 4.0

  @nn.compact
  def __call__(self, x, generate: bool = False):
    dim = x.shape[-1]
    transform, post = elementwise_transform(self.transform, self.num_bins, self.bound)
    order = tuple(range(dim))[::-1] if self.reverse_order else None
    made = MADE(tuple(self.hidden_sizes), transform.num_params, order, zero_init_output=True)
    make = bij.inverse_autoregressive if self.inverse else bij.masked_autoregressive
    layer = make(lambda _, v: post(made(v)), transform, dim)
    return _run(layer, None, x, generate)


class Planar(nn.Module):
  """Planar flow layer y = x + û tanh(w·x + b) (generative direction; the inverse by bisection)."""

  @nn.compact
  def __call__(self, x, generate: bool = False):
    d = x.shape[-1]
    init = nn.initializers.normal(1.0 / np.sqrt(d))
    params = {"u": self.param("u", init, (d,), x.dtype), "w": self.param("w", init, (d,), x.dtype),
              "b": self.param("b", nn.initializers.zeros, (), x.dtype)}
    return _run(bij.PLANAR, params, x, generate)


class Radial(nn.Module):
  """Radial flow layer y = x + β/(α + r)·(x - z₀), β ≥ -α."""

  @nn.compact
  def __call__(self, x, generate: bool = False):
    d = x.shape[-1]
    params = {"center": self.param("center", nn.initializers.normal(1.0), (d,), x.dtype),
              "log_alpha": self.param("log_alpha", nn.initializers.zeros, (), x.dtype),
              "beta": self.param("beta", nn.initializers.zeros, (), x.dtype)}
    return _run(bij.RADIAL, params, x, generate)


class Flow(nn.Module):
  """Layers in density order (layer 0 sees the data) over a standard normal base.

  `flow(x)` -> (z, log|det ∂z/∂x|); `flow(x, start=k)` runs layers k.. only (the density of the
  k-th intermediate variable); `flow.apply(params, z, method="generate")` -> x."""
  layers: Sequence[nn.Module]

  def __call__(self, x, start: int = 0):
    return run_layers(self.layers[start:], x)

  def generate(self, z, stop: int = 0):
    """z -> x through layers in reverse; `stop=k` ends at the k-th intermediate variable."""
    return run_layers(self.layers[stop:], z, generate=True)


def _coupling_layers(transform):
  return lambda i, hidden, num_bins, bound: [Coupling(transform, "checkerboard", i % 2, hidden,
                                                      num_bins, bound)]


def _autoregressive_layers(inverse):
  return lambda i, hidden, num_bins, bound: [Autoregressive(hidden, "affine", inverse, bool(i % 2))]


# kind -> (layer index, hidden sizes, spline bins, spline bound) -> that layer's modules.
VECTOR_FLOW_KINDS: Mapping[str, Callable[..., list]] = {
    "planar": lambda i, *_: [Planar()],
    "radial": lambda i, *_: [Radial()],
    "nice": _coupling_layers("additive"),
    "realnvp": _coupling_layers("affine"),
    "spline": _coupling_layers("spline"),
    "maf": _autoregressive_layers(False),
    "iaf": _autoregressive_layers(True),
    "glow": lambda i, hidden, *_: [ActNorm(1), InvertibleLinear(1, True, seed=i),
                                   Coupling("affine", "channel", i % 2, hidden)],
}
# Kinds whose layers all preserve volume get a final per-dimension scaling (NICE's diagonal).
VOLUME_PRESERVING_KINDS = ("nice",)


def vector_flow_layers(kind: str, num_layers: int, hidden_sizes: Sequence[int],
                       num_bins: int = 8, bound: float = 4.0) -> list:
  """The layers of a flow on vectors, in density order, after a data-initialised ActNorm:
  planar | radial (one map a layer), nice | realnvp | spline (coupling layers with alternating
  masks), maf | iaf (MADE layers with alternating orders), glow (actnorm, invertible linear
  map, affine coupling)."""
  if kind not in VECTOR_FLOW_KINDS:
    raise ValueError(f"unknown model.kind {kind!r} for a flow; choose one of {sorted(VECTOR_FLOW_KINDS)}")
  layers = [ActNorm(1)]
  for i in range(num_layers):
    layers += VECTOR_FLOW_KINDS[kind](i, tuple(hidden_sizes), num_bins, bound)
  if kind in VOLUME_PRESERVING_KINDS:
    layers.append(ActNorm(1))
  return layers


class GlowStep(nn.Module):
  """One step of flow on images: ActNorm, invertible 1x1 convolution, affine coupling with a
  channel mask (alternating halves step by step)."""
  hidden_channels: int
  parity: int
  lu: bool = True
  seed: int = 0

  def setup(self):
    self.layers = [ActNorm(3), InvertibleLinear(3, self.lu, self.seed),
                   Coupling("affine", "channel", self.parity, (self.hidden_channels,))]

  def __call__(self, x, generate: bool = False):
    return run_layers(self.layers, x, generate)


def glow_latent_shapes(image_shape: Sequence[int], levels: int):
  """The (H, W, C) of each factored-out half (levels 1..L-1) and of the last level's output."""
  h, w, c = image_shape
  shapes = []
  for level in range(levels):
    h, w, c = h // 2, w // 2, 4 * c
    if level < levels - 1:
      shapes.append((h, w, c // 2))
      c -= c // 2
  shapes.append((h, w, c))
  return shapes


class Glow(nn.Module):
  """Glow's multi-scale architecture (Kingma & Dhariwal 2018) in the density direction: at each
  of `levels` levels, squeeze, `steps` GlowSteps, then (but at the last) factor half the
  channels out to the N(0, I) base. `flow(y)` -> (z flattened and concatenated over levels,
  log|det ∂z/∂y|); `generate(z)` inverts it."""
  image_shape: Sequence[int]
  levels: int = 2
  steps: int = 4
  hidden_channels: int = 64
  lu: bool = True

  def setup(self):
    self.blocks = [[GlowStep(self.hidden_channels, s % 2, self.lu, seed=level * self.steps + s)
                    for s in range(self.steps)] for level in range(self.levels)]

  def __call__(self, y):
    total = jnp.zeros(y.shape[:1], y.dtype)
    outputs = []
    h = y
    for level, block in enumerate(self.blocks):
      h, log_det = run_layers(block, bij.squeeze(h))
      total = total + log_det
      if level < self.levels - 1:
        half = h.shape[-1] // 2
        outputs.append(h[..., :half].reshape(h.shape[0], -1))
        h = h[..., half:]
    outputs.append(h.reshape(h.shape[0], -1))
    return jnp.concatenate(outputs, axis=-1), total

  def generate(self, z):
    shapes = glow_latent_shapes(self.image_shape, self.levels)
    sizes = np.cumsum([int(np.prod(s)) for s in shapes])[:-1]
    parts = [p.reshape(z.shape[0], *s) for p, s in zip(jnp.split(z, sizes, axis=-1), shapes)]
    total = jnp.zeros(z.shape[:1], z.dtype)
    h = parts[-1]
    for level in reversed(range(self.levels)):
      if level < self.levels - 1:
        h = jnp.concatenate([parts[level], h], axis=-1)
      h, log_det = run_layers(self.blocks[level], h, generate=True)
      total = total + log_det
      h = bij.unsqueeze(h)
    return h, total


class LogitNormalDequantizer(nn.Module):
  """Variational dequantization q(u | k): u = sigmoid(μ + σ ε), ε ~ N(0, I), with μ and log σ
  from a small CNN of the image (output zero-initialised: q starts at sigmoid(N(0, I)))."""
  hidden_channels: int = 32

  @nn.compact
  def __call__(self, bins, eps):
    x = bins / PIXEL_MAX - 0.5
    h = nn.relu(nn.Conv(self.hidden_channels, (3, 3), padding="SAME")(x))
    h = nn.relu(nn.Conv(self.hidden_channels, (3, 3), padding="SAME")(h))
    out = nn.Conv(2 * x.shape[-1], (3, 3), padding="SAME", kernel_init=nn.initializers.zeros)(h)
    mean, log_scale = jnp.split(out, 2, axis=-1)
    return mean + jnp.exp(log_scale) * eps, log_scale


class ImageFlow(nn.Module):
  """A Glow over logit-preprocessed, dequantized 8-bit images, with its dequantizer:
  `dequantization` "uniform" (no parameters) or "variational" (LogitNormalDequantizer)."""
  image_shape: Sequence[int]
  levels: int = 2
  steps: int = 4
  hidden_channels: int = 64
  lu: bool = True
  dequantization: str = "uniform"

  def setup(self):
    self.glow = Glow(tuple(self.image_shape), self.levels, self.steps, self.hidden_channels, self.lu)
    if self.dequantization == "variational":
      self.dequantizer = LogitNormalDequantizer()

  def __call__(self, y):
    return self.glow(y)

  def generate(self, z):
    return self.glow.generate(z)

  def noise(self, bins, eps):
    """Variational dequantization: (pre-sigmoid h, log σ) for the standard normal draws eps."""
    return self.dequantizer(bins, eps)

  def initialize(self, y, bins):
    """Creates every parameter: the Glow's (ActNorms initialised on y) and the dequantizer's."""
    if self.dequantization == "variational":
      self.dequantizer(bins, jnp.zeros_like(bins))
    return self.glow(y)
