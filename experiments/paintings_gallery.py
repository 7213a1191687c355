"""The figures and the static HTML gallery of `experiments.paintings` (OUT/index.html).

The page is one file with relative links to PNG files under OUT, so it opens from disk in any
browser. It carries a small check: when the page has loaded, `document.body.dataset.status` is
"ok" if every image decoded, "missing: <src> ..." if some did not, and "script-error: ..." if a
script failed (tests read it from headless Chromium's DOM).
"""

from __future__ import annotations

import glob
import html
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from gen_jax.training import plots
from gen_jax.training.workdir import write_text_atomic

STATUS_SCRIPT = """<script>
window.addEventListener("error", function (e) {  // script errors (an image's does not bubble here)
  document.body.dataset.status = "script-error: " + (e.message || e.type);
});
window.addEventListener("load", function () {
  if ((document.body.dataset.status || "").indexOf("script-error") === 0) return;
  var missing = [];
  document.querySelectorAll("img").forEach(function (img) {
    if (!img.complete || img.naturalWidth === 0) missing.push(img.getAttribute("src"));
  });
  document.body.dataset.status = missing.length ? "missing: " + missing.join(" ") : "ok";
});
</script>"""

# Headless Chromium from a closed network: no background connections, no first-run dialogs.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
CHROMIUM_TIMEOUT_SECONDS = 120


def chromium() -> str:
  path = shutil.which("chromium") or shutil.which("chromium-browser")
  if path is None:
    raise FileNotFoundError("headless Chromium is needed to open the gallery: apt-get install chromium")
  return path


def run_chromium(page: str, *flags: str) -> str:
  """Opens the local `page` in headless Chromium (a fresh profile) with `flags`; its stdout."""
  with tempfile.TemporaryDirectory(prefix="gen_jax_chromium_") as profile:
    return subprocess.run([chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *flags,
                           f"file://{os.path.abspath(page)}"], capture_output=True, text=True,
                          timeout=CHROMIUM_TIMEOUT_SECONDS).stdout


def page_status(page: str) -> str:
  """What the page's own check reports once loaded: "ok", "missing: ..." or "script-error: ..."."""
  found = re.search(r'<body[^>]*data-status="([^"]*)"', run_chromium(page, "--dump-dom"))
  return html.unescape(found.group(1)) if found else "no status (the check did not run)"


def screenshot(page: str, png: str, width: int = 1200, height: int = 1600) -> str:
  """A PNG of the page's top `height` pixels at `width`, rendered by headless Chromium."""
  run_chromium(page, f"--window-size={width},{height}", f"--screenshot={os.path.abspath(png)}")
  if not os.path.exists(png):
    raise OSError(f"headless Chromium wrote no screenshot of {page}")
  return png


STYLE = """<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
td, th { border: 1px solid #bbb; padding: 0.3em 0.6em; text-align: right; }
th { background: #eee; } td:first-child, th:first-child { text-align: left; }
img { image-rendering: pixelated; margin: 0.3em; border: 1px solid #ccc; max-width: 100%; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; max-width: 32em; }
.note { color: #555; font-size: 0.9em; }
</style>"""


def _display(images: np.ndarray) -> np.ndarray:
  return np.clip(np.asarray(images, np.float32), 0.0, 1.0)


def image_grid(images: np.ndarray, path: str, columns: int = 8) -> str:
  """Images in [0, 1] as one PNG grid; returns the path."""
  return plots.save_image_grid(_display(images), path, columns)


def neighbour_panel(samples: np.ndarray, neighbours: np.ndarray, path: str) -> str:
  """Rows: a sample, then its nearest training squares (neighbours (N, k, H, W, C))."""
  rows = np.concatenate([samples[:, None], neighbours], axis=1)
  return plots.save_image_grid(_display(rows.reshape(-1, *samples.shape[1:])), path, rows.shape[1])


def distance_histogram(sample_distances, heldout_distances, title: str, path: str) -> str:
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.2))
  bins = np.histogram_bin_edges(np.concatenate([sample_distances, heldout_distances]), 30)
  ax.hist(heldout_distances, bins, alpha=0.6, density=True, label="held-out squares")
  ax.hist(sample_distances, bins, alpha=0.6, density=True, label="samples")
  ax.set_xlabel("distance to the nearest training square")
  ax.set_ylabel("density")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def style_grids(arrays: dict, out_dir: str) -> list[dict]:
  """A grid of training squares per style (first-level sub-folder), when there are several."""
  styles = [str(s) for s in arrays["styles"]]
  if len(styles) < 2:
    return []
  grids = []
  for index, style in enumerate(styles):
    chosen = arrays["train_x"][arrays["train_label"] == index][:16]
    if len(chosen):
      path = image_grid(chosen.astype(np.float32) / 255.0, os.path.join(out_dir, f"style_{index}.png"))
      grids.append({"style": style or "(top level)", "count": int(np.sum(arrays["train_label"] == index)),
                    "grid": path})
  return grids


def _img(workdir: str, path: str, caption: str) -> str:
  src = html.escape(os.path.relpath(path, workdir))
  return (f'<figure><img src="{src}" alt="{html.escape(caption)}">'
          f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _fmt(value, digits: int = 3) -> str:
  return "—" if value is None else f"{value:.{digits}f}"


def _metrics_table(results: dict) -> str:
  head = ("<tr><th>model</th><th>bits/dim (held-out)</th><th>likelihood</th><th>steps × batch</th>"
          "<th>training time</th><th>NN distance, samples / held-out (pixels)</th>"
          "<th>near copies (pixels)</th><th>NN ratio (features)</th><th>near copies (features)</th>"
          "<th>FID / KID</th></tr>")
  rows = []
  for r in results["models"]:
    bpd = _fmt(r["bits_per_dim"]) + (f" ± {r['bits_per_dim_sem']:.3f}" if r["bits_per_dim_sem"] else "")
    pixels = r["memorisation"]["pixels"]
    features = r["memorisation"].get("features")
    fid = f"{r['fid']:.2f} / {r['kid']:.4f}" if "fid" in r else "—"
    rows.append(
        f"<tr><td>{html.escape(r['model'])}</td><td>{bpd}</td><td>{html.escape(r['likelihood'])}</td>"
        f"<td>{r['steps']:,} × {r['batch_size']}</td><td>{r['train_seconds'] / 60:.1f} min</td>"
        f"<td>{pixels['sample_nn_median']:.2f} / {pixels['heldout_nn_median']:.2f}</td>"
        f"<td>{pixels['near_copy_fraction']:.1%}</td>"
        f"<td>{_fmt(features['nn_median_ratio'] if features else None, 2)}</td>"
        f"<td>{'—' if not features else format(features['near_copy_fraction'], '.1%')}</td>"
        f"<td>{fid}</td></tr>")
  return f"<table>{head}{''.join(rows)}</table>"


def write_gallery(workdir: str, results: dict, trained: dict) -> str:
  """OUT/index.html from results.json's content and the runs' own figures."""
  manifest = results["manifest"]
  parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>gen_jax: "
           f"{html.escape(os.path.basename(manifest['settings']['images']))}</title>{STYLE}"
           f"{STATUS_SCRIPT}</head><body>"]
  parts.append(f"<h1>Generated pictures from {html.escape(manifest['settings']['images'])}</h1>")
  s = manifest["settings"]
  parts.append(
      f"<p>{manifest['num_pictures']} pictures made {manifest['num_train']:,} training and "
      f"{manifest['num_test']:,} held-out squares of {s['image_size']}×{s['image_size']} "
      f"(layout {html.escape(s['layout'])}{', tiles of ' + str(s['tile_size']) + ' px' if s['layout'] == 'tiles' else ''}, "
      f"split seed {s['seed']}); {len(manifest['skipped'])} files skipped. "
      f"The whole command took {results['total_seconds'] / 60:.1f} min.</p>")
  if manifest["skipped"]:
    items = "".join(f"<li>{html.escape(k['path'])}: {html.escape(k['reason'])}</li>" for k in manifest["skipped"])
    parts.append(f"<details><summary>skipped files</summary><ul>{items}</ul></details>")
  parts.append("<h2>Metrics</h2>" + _metrics_table(results))
  parts.append(
      "<p class='note'>Bits/dim: −log₂ p of the held-out 8-bit pixels per dimension (lower is "
      "better; the VAE's and the DDPM's are upper bounds). NN distance: Euclidean distance "
      "from a sample (or a held-out square) to its nearest training square; a model that copies "
      "its training pictures has samples far closer than held-out squares are. Near copies: the "
      "share of samples closer than the 5 % quantile of the held-out distances (about 5 % for a "
      f"model that does not copy). Feature space: {html.escape(results['feature_space'])}. "
      f"FID/KID: {html.escape(results['fid'])}.</p>")
  parts.append("<h2>The data</h2>" + _img(workdir, results["heldout_grid"], "held-out squares"))
  if results["style_grids"]:
    parts.append("<h3>Styles (first-level sub-folders)</h3><p class='note'>The models are trained "
                 "unconditionally; the styles are recorded as labels.</p>")
    parts += [_img(workdir, g["grid"], f"{g['style']}: {g['count']} training squares")
              for g in results["style_grids"]]
  for r in results["models"]:
    run_dir = trained[r["model"]]["run_dir"]
    parts.append(f"<h2>{html.escape(r['model'])}</h2>")
    parts.append(_img(workdir, r["samples"], f"{r['model']}: samples"))
    for path in sorted(glob.glob(os.path.join(run_dir, "samples", "*interpolations*.png"))):
      parts.append(_img(workdir, path, "interpolations between the latent means of held-out squares"))
    curves = os.path.join(run_dir, "loss_curves.png")
    if os.path.exists(curves):
      parts.append(_img(workdir, curves, f"{r['model']}: loss curves"))
    for m in r["memorisation"].values():
      parts.append(_img(workdir, m["panel"],
                        f"the samples closest to a training square ({m['space']}), each "
                        "followed by its nearest training squares"))
      parts.append(_img(workdir, m["histogram"],
                        f"{m['space']}: median {m['sample_nn_median']:.2f} (samples) vs "
                        f"{m['heldout_nn_median']:.2f} (held-out); near copies "
                        f"{m['near_copy_fraction']:.1%}"))
  parts.append("</body></html>")
  index = os.path.join(workdir, "index.html")
  write_text_atomic(index, "\n".join(parts))
  return index
