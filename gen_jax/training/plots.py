"""PNG outputs: image grids, 2-D scatter plots and loss curves."""

from __future__ import annotations

import math
import os

import numpy as np


def image_grid(images, num_columns: int | None = None, padding: int = 1) -> np.ndarray:
  """(N, H, W, C) floats in [0, 1] -> one uint8 (rows·(H+p), cols·(W+p), C) image."""
  images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
  n, h, w, c = images.shape
  cols = num_columns or int(math.ceil(math.sqrt(n)))
  rows = int(math.ceil(n / cols))
  grid = np.ones((rows * (h + padding) + padding, cols * (w + padding) + padding, c), np.float32)
  for i in range(n):
    r, q = divmod(i, cols)
    top, left = padding + r * (h + padding), padding + q * (w + padding)
    grid[top:top + h, left:left + w] = images[i]
  return (grid * 255).round().astype(np.uint8)


def save_image_grid(images, path: str, num_columns: int | None = None, scale: int = 0):
  """Writes a grid PNG; small images are upscaled (nearest) to at least ~256 px wide."""
  from PIL import Image
  grid = image_grid(images, num_columns)
  if grid.shape[-1] == 1:
    grid = grid[..., 0]
  im = Image.fromarray(grid)
  scale = scale or max(1, 256 // max(im.width, 1) + (im.width < 256))
  if scale > 1:
    im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  im.save(path)
  return path


def pyplot():
  """matplotlib.pyplot on the Agg backend (imported on first use: figures only)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_scatter(points, path: str, labels=None, title: str = "", limits=None):
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(5, 5))
  points = np.asarray(points)
  sc = ax.scatter(points[:, 0], points[:, 1], c=labels, s=3, cmap="tab10" if labels is not None else None,
                  alpha=0.6)
  if labels is not None:
    fig.colorbar(sc, ax=ax, fraction=0.046)
  if limits is not None:
    ax.set_xlim(limits)
    ax.set_ylim(limits)
  ax.set_title(title)
  ax.set_aspect("equal")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)
  return path


def save_loss_curves(records, path: str, title: str = ""):
  """One panel per logged scalar (loss terms, learning rate, ...) against step."""
  plt = pyplot()
  names = sorted({k for r in records for k, v in r.items()
                  if k != "step" and isinstance(v, (int, float))})
  if not names:
    return None
  cols = min(3, len(names))
  rows = int(math.ceil(len(names) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3 * rows), squeeze=False)
  for ax, name in zip(axes.flat, names):
    pts = [(r["step"], r[name]) for r in records if isinstance(r.get(name), (int, float))]
    ax.plot(*zip(*pts), lw=1)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
  for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
  # Fixed margins in inches (tight_layout measures every label's text and costs more than the
  # drawing): half an inch above the panels for the title, a little under for the last axis.
  height = 3 * rows
  fig.suptitle(title, y=1 - 0.1 / height, va="top")
  fig.subplots_adjust(left=0.08, right=0.97, bottom=0.45 / height, top=1 - 0.55 / height,
                      wspace=0.3, hspace=0.55)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def save_density_panels(panels, samples, limit: float, path: str, title: str = ""):
  """2-D densities side by side, then a scatter of samples: `panels` are (title, densities on
  a square grid over [-limit, limit]², rows from the bottom)."""
  plt = pyplot()
  fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4 * (len(panels) + 1), 4))
  for ax, (panel_title, p) in zip(axes, panels):
    side = int(round(math.sqrt(p.size)))
    ax.imshow(np.asarray(p).reshape(side, side), origin="lower",
              extent=(-limit, limit, -limit, limit), cmap="viridis")
    ax.set_title(panel_title, fontsize=9)
  samples = np.asarray(samples)
  axes[-1].scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5)
  axes[-1].set_xlim(-limit, limit)
  axes[-1].set_ylim(-limit, limit)
  axes[-1].set_title(f"{len(samples)} samples", fontsize=9)
  for ax in axes:
    ax.set_aspect("equal")
  fig.suptitle(title)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path
