"""Autoregressive networks: the thesis's fixed-order MLP, FVSBN, NADE, a gated PixelCNN without a
blind spot, and a causal transformer with a key-value cache for sampling. The likelihoods and
sampling loops are in `gen_jax.autoregressive`; MADE is in `gen_jax.nets.flows` (an FVSBN is a
MADE without hidden layers).

Every network maps x to per-position outputs whose entry at position i depends only on the
positions before i (raster order for images, time for sequences).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.nets.flows import MADE, made_masks

# ----------------------------------------------------------------------------
# Vectors (batch, D): output i is the logit of p(x_i = 1 | x_<i).


class NADE(nn.Module):
  """NADE (Larochelle & Murray 2011): logit_i = b_i + V_i · σ(a_i), a_i = c + Σ_{j<i} W_j x_j,
  the shared pre-activations carried from position to position by a scan (O(D·H) per example;
  a cumulative sum over the (batch, D, H) contributions lowers to an O(D²·H) window sum on CPU)."""
  hidden_size: int

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    w = self.param("W", nn.initializers.normal(1.0 / math.sqrt(dim)), (dim, self.hidden_size))
    c = self.param("c", nn.initializers.zeros, (self.hidden_size,))
    v = self.param("V", nn.initializers.normal(1.0 / math.sqrt(self.hidden_size)), (dim, self.hidden_size))
    b = self.param("b", nn.initializers.zeros, (dim,))

    def position(a, inputs):
      x_i, w_i, v_i = inputs
      return a + x_i[:, None] * w_i, nn.sigmoid(a) @ v_i

    start = jnp.broadcast_to(c, (x.shape[0], self.hidden_size)).astype(x.dtype)
    _, logits = jax.lax.scan(position, start, (x.T, w, v))
    return b + logits.T


class FixedOrderMLP(nn.Module):
  """The thesis's fixed-order model (seed 003, eq. 2.20, Fig. 2.3): logit_i = MLP(x_{i-k}, ...,
  x_{i-1}) with the window zero-padded at the start, one MLP shared by every position plus a
  learned per-position bias in its first layer and output."""
  context: int
  hidden_sizes: Sequence[int]

  @nn.compact
  def __call__(self, x):
    dim = x.shape[-1]
    padded = jnp.pad(x, ((0, 0), (self.context, 0)))
    windows = jnp.stack([padded[:, j:j + dim] for j in range(self.context)], axis=-1)  # (B, D, k)
    h = windows
    for layer, width in enumerate(self.hidden_sizes):
      h = nn.Dense(width)(h)
      if layer == 0:
        h = h + self.param("position_bias", nn.initializers.zeros, (dim, width))
      h = nn.relu(h)
    out = nn.Dense(1)(h)[..., 0]
    return out + self.param("output_bias", nn.initializers.zeros, (dim,))


def made_orderings(dim: int, num_masks: int) -> np.ndarray:
  """(num_masks, dim) input orderings: the identity first, then seeded permutations."""
  return np.stack([np.arange(dim)] + [np.random.default_rng(k).permutation(dim)
                                      for k in range(1, num_masks)])


class OrderAgnosticMADE(nn.Module):
  """MADE with `num_masks` orderings sharing one set of weights (order-agnostic training,
  Germain et al. 2015): `__call__(x, mask_index)` gives the logits of example b under its
  ordering mask_index[b] (`made_orderings`: the first is the identity). Every ordering's
  network runs on the whole batch and each example keeps its own: num_masks times the cost."""
  hidden_sizes: Sequence[int]
  num_masks: int
  activation: Callable = nn.relu

  @nn.compact
  def __call__(self, x, mask_index):
    dim = x.shape[-1]
    hidden = tuple(self.hidden_sizes)
    per_mask = [made_masks(dim, hidden, order) for order in made_orderings(dim, self.num_masks)]
    layer_masks = [jnp.asarray(np.stack(masks), x.dtype) for masks in zip(*per_mask)]  # (K, in, out)
    h = jnp.broadcast_to(x, (self.num_masks, *x.shape))
    for layer, masks in enumerate(layer_masks):
      kernel = self.param(f"kernel_{layer}", nn.initializers.lecun_normal(), masks.shape[1:], x.dtype)
      bias = self.param(f"bias_{layer}", nn.initializers.zeros, masks.shape[2:], x.dtype)
      h = jnp.einsum("kbi,kio->kbo", h, kernel * masks) + bias
      if layer < len(layer_masks) - 1:
        h = self.activation(h)
    return jnp.take_along_axis(h, mask_index[None, :, None], axis=0)[0]


class MixtureMADE(nn.Module):
  """A MADE emitting a K-component mixture per dimension (3K numbers: weight logits, means,
  log-scales) for p(x_d | x_<d), plus a per-dimension bias drawn at init: the first dimension's
  mixture has no inputs, and K components started equal would get equal gradients forever."""
  hidden_sizes: Sequence[int]
  num_mixtures: int
  bias_init_scale: float = 1.0

  @nn.compact
  def __call__(self, x):
    outputs = MADE(hidden_sizes=tuple(self.hidden_sizes), params_per_dim=3 * self.num_mixtures)(x)
    bias = self.param("mixture_bias", nn.initializers.normal(self.bias_init_scale), outputs.shape[1:])
    return outputs + bias


# ----------------------------------------------------------------------------
# PixelCNN: two stacks of shifted convolutions (PixelCNN++, Salimans et al. 2017). The vertical
# stack v at (i, j) sees rows < i; the horizontal stack h sees row i left of j and, through v,
# every row above: together every pixel before (i, j) in raster order and nothing else, so the
# network has no blind spot (gated PixelCNN, van den Oord et al. 2016).


def down_shift(x):
  """Rows moved down by one (a zero row on top): output row i holds input row i - 1."""
  return jnp.pad(x, ((0, 0), (1, 0), (0, 0), (0, 0)))[:, :-1]


def right_shift(x):
  """Columns moved right by one: output column j holds input column j - 1."""
  return jnp.pad(x, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :-1]


class ShiftedConv(nn.Module):
  """A VALID convolution over x padded so output (i, j) sees rows i-kh+1..i and either columns
  j-(kw-1)/2..j+(kw-1)/2 (`down`) or j-kw+1..j (`down_right`)."""
  features: int
  kernel_size: Sequence[int]
  mode: str = "down"

  @nn.compact
  def __call__(self, x):
    kh, kw = self.kernel_size
    left, right = ((kw - 1) // 2, (kw - 1) // 2) if self.mode == "down" else (kw - 1, 0)
    x = jnp.pad(x, ((0, 0), (kh - 1, 0), (left, right), (0, 0)))
    return nn.Conv(self.features, (kh, kw), padding="VALID")(x)


class GatedResidual(nn.Module):
  """x + a ⊙ σ(b), (a, b) = conv(elu(x)) [+ W elu(aux)] [+ class embedding]: the gated
  activation tanh-free as in PixelCNN++, with the conditioning added before the gate."""
  kernel_size: Sequence[int]
  mode: str
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, aux=None, labels=None):
    features = x.shape[-1]
    h = ShiftedConv(features, self.kernel_size, self.mode)(nn.elu(x))
    if aux is not None:
      h = h + nn.Dense(features)(nn.elu(aux))
    h = ShiftedConv(2 * features, self.kernel_size, self.mode)(nn.elu(h))
    if labels is not None:
      h = h + nn.Embed(self.num_classes, 2 * features)(labels)[:, None, None, :]
    a, b = jnp.split(h, 2, axis=-1)
    return x + a * nn.sigmoid(b)


class PixelCNN(nn.Module):
  """A gated PixelCNN on (batch, H, W, C) images: (batch, H, W, C) per-dimension logits, or
  (batch, H, W, outputs_per_pixel) (e.g. PixelCNN++'s mixture parameters). Output (i, j) depends
  only on the pixels before (i, j) in raster order; with `num_classes`, also on the label."""
  channels: int
  num_layers: int
  outputs_per_pixel: Optional[int] = None
  num_classes: int = 0

  @nn.compact
  def __call__(self, x, labels=None):
    if labels is not None and not self.num_classes:
      raise ValueError("PixelCNN got labels but was built with num_classes=0")
    f = self.channels
    v = down_shift(ShiftedConv(f, (2, 3), "down")(x))
    h = (down_shift(ShiftedConv(f, (1, 3), "down")(x))
         + right_shift(ShiftedConv(f, (2, 1), "down_right")(x)))
    for _ in range(self.num_layers):
      v = GatedResidual((2, 3), "down", self.num_classes)(v, labels=labels)
      h = GatedResidual((2, 2), "down_right", self.num_classes)(h, aux=v, labels=labels)
    return nn.Dense(self.outputs_per_pixel or x.shape[-1])(nn.elu(h))


# ----------------------------------------------------------------------------
# A causal transformer over token sequences (seed 004's masked attention; GPT-style pre-norm
# blocks, learned positions). Output t is the distribution of token t given tokens 0..t-1: the
# input is the sequence shifted right behind a learned start token (or a class token).


def causal_attention(q, k, v, query_positions):
  """softmax(q kᵀ / √d + mask) v with key s visible to the query at position t iff s ≤ t:
  q (B, Q, H, d), k and v (B, S, H, d), query_positions (Q,)."""
  scores = jnp.einsum("bqhd,bshd->bhqs", q, k) / math.sqrt(q.shape[-1])
  visible = jnp.arange(k.shape[1])[None, :] <= query_positions[:, None]
  scores = jnp.where(visible[None, None], scores, -jnp.inf)
  return jnp.einsum("bhqs,bshd->bqhd", jax.nn.softmax(scores, axis=-1), v)


class CausalTransformer(nn.Module):
  """Logits (batch, L, vocab_size) for integer tokens (batch, L), L ≤ max_len; output t depends
  only on tokens 0..t-1 (and the label with `num_classes`). `decode` runs one position with a
  key-value cache (`init_cache`), giving the same outputs one token at a time."""
  num_layers: int
  num_heads: int
  embed_dim: int
  vocab_size: int
  max_len: int
  num_classes: int = 0
  mlp_ratio: int = 4

  def setup(self):
    if self.embed_dim % self.num_heads:
      raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
    self.token_embed = nn.Embed(self.vocab_size, self.embed_dim)
    self.position_embed = self.param("position_embed", nn.initializers.normal(0.02),
                                     (self.max_len, self.embed_dim))
    self.start = nn.Embed(max(self.num_classes, 1), self.embed_dim)   # start token / class token
    self.attn_norms = [nn.LayerNorm() for _ in range(self.num_layers)]
    self.qkv = [nn.Dense(3 * self.embed_dim) for _ in range(self.num_layers)]
    self.attn_out = [nn.Dense(self.embed_dim) for _ in range(self.num_layers)]
    self.mlp_norms = [nn.LayerNorm() for _ in range(self.num_layers)]
    self.mlp_in = [nn.Dense(self.mlp_ratio * self.embed_dim) for _ in range(self.num_layers)]
    self.mlp_out = [nn.Dense(self.embed_dim) for _ in range(self.num_layers)]
    self.final_norm = nn.LayerNorm()
    self.head = nn.Dense(self.vocab_size)

  def start_embedding(self, batch: int, labels):
    if labels is not None and not self.num_classes:
      raise ValueError("CausalTransformer got labels but was built with num_classes=0")
    labels = jnp.zeros(batch, jnp.int32) if labels is None else labels
    return self.start(labels)

  def heads(self, x):
    return x.reshape(*x.shape[:-1], self.num_heads, self.embed_dim // self.num_heads)

  def block(self, layer: int, x, attend):
    """Pre-norm block: x + attn(LN x), then + MLP(LN x); `attend(layer, q, k, v)` -> (B, Q, H, d)."""
    q, k, v = jnp.split(self.qkv[layer](self.attn_norms[layer](x)), 3, axis=-1)
    out = attend(layer, self.heads(q), self.heads(k), self.heads(v))
    x = x + self.attn_out[layer](out.reshape(*x.shape))
    return x + self.mlp_out[layer](nn.gelu(self.mlp_in[layer](self.mlp_norms[layer](x))))

  def __call__(self, tokens, labels=None):
    batch, length = tokens.shape
    if length > self.max_len:
      raise ValueError(f"a sequence of {length} tokens is longer than this transformer's "
                       f"max_len={self.max_len}: crop the data or build it with a larger max_len")
    inputs = jnp.concatenate([self.start_embedding(batch, labels)[:, None],
                              self.token_embed(tokens[:, :-1])], axis=1)
    x = inputs + self.position_embed[:length]
    positions = jnp.arange(length)
    for layer in range(self.num_layers):
      x = self.block(layer, x, lambda _, q, k, v: causal_attention(q, k, v, positions))
    return self.head(self.final_norm(x))

  def init_cache(self, batch: int, dtype=jnp.float32):
    """Zero keys and values (batch, max_len, heads, head_dim) for every layer."""
    shape = (batch, self.max_len, self.num_heads, self.embed_dim // self.num_heads)
    return [{"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype)}
            for _ in range(self.num_layers)]

  def decode(self, cache, previous_tokens, position, labels=None):
    """One position: the logits (batch, vocab) of token `position` given the tokens before it,
    whose keys and values are in `cache`; `previous_tokens` (batch,) is token position - 1
    (ignored at position 0). Returns (logits, cache with this position's keys and values)."""
    batch = previous_tokens.shape[0]
    embedded = jnp.where(position == 0, self.start_embedding(batch, labels),
                         self.token_embed(previous_tokens))
    x = (embedded + self.position_embed[position])[:, None]
    new_cache = []

    def attend(layer, q, k, v):
      entry = {"key": jax.lax.dynamic_update_slice_in_dim(cache[layer]["key"], k, position, 1),
               "value": jax.lax.dynamic_update_slice_in_dim(cache[layer]["value"], v, position, 1)}
      new_cache.append(entry)
      return causal_attention(q, entry["key"], entry["value"], jnp.reshape(position, (1,)))

    for layer in range(self.num_layers):
      x = self.block(layer, x, attend)
    return self.head(self.final_norm(x))[:, 0], new_cache


# ----------------------------------------------------------------------------
# A recurrent network over the pixel sequence (the thesis's eq. 2.21, h_d = RNN(x_d, h_{d-1})):
# the same token interface as the transformer, with the recurrent state as its cache.

RECURRENT_CELLS = {"gru": nn.GRUCell, "lstm": nn.OptimizedLSTMCell}


class PixelRNN(nn.Module):
  """Logits (batch, L, vocab_size) for integer tokens (batch, L); output t depends only on tokens
  0..t-1 through the state h_t = cell(h_{t-1}, embed(x_{t-1})) (a start or class token at t = 0).
  `decode` runs one step from the state in `init_cache`."""
  hidden_size: int
  vocab_size: int
  cell: str = "gru"
  num_classes: int = 0

  def setup(self):
    if self.cell not in RECURRENT_CELLS:
      raise ValueError(f"unknown recurrent cell {self.cell!r}; choose one of {sorted(RECURRENT_CELLS)}")
    self.token_embed = nn.Embed(self.vocab_size, self.hidden_size)
    self.start = nn.Embed(max(self.num_classes, 1), self.hidden_size)
    self.recurrent_cell = RECURRENT_CELLS[self.cell](features=self.hidden_size)
    self.rnn = nn.RNN(self.recurrent_cell)
    self.head = nn.Dense(self.vocab_size)

  def start_embedding(self, batch: int, labels):
    if labels is not None and not self.num_classes:
      raise ValueError("PixelRNN got labels but was built with num_classes=0")
    return self.start(jnp.zeros(batch, jnp.int32) if labels is None else labels)

  def __call__(self, tokens, labels=None):
    inputs = jnp.concatenate([self.start_embedding(tokens.shape[0], labels)[:, None],
                              self.token_embed(tokens[:, :-1])], axis=1)
    return self.head(self.rnn(inputs))

  def init_cache(self, batch: int, dtype=jnp.float32):
    zeros = jnp.zeros((batch, self.hidden_size), dtype)
    return (zeros, zeros) if self.cell == "lstm" else zeros

  def decode(self, cache, previous_tokens, position, labels=None):
    """One step: (logits (batch, vocab) of token `position`, the next state)."""
    embedded = jnp.where(position == 0, self.start_embedding(previous_tokens.shape[0], labels),
                         self.token_embed(previous_tokens))
    state, output = self.recurrent_cell(cache, embedded)
    return self.head(output), state
