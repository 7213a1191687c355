r"""The thesis's application: generative models of a folder of pictures (Chinese paintings, or any
folder), end to end, in one command.

  python -m experiments.paintings --images=DIR --workdir=OUT [--models=vae,pixelcnn_pp,ddpm] \
      [--image_size=32|64] [--layout=crop|tiles --tile_size=N] [--strict]

1. Prepares the folder once (`gen_jax.data.folder`): every picture under DIR (sub-folders too;
   the first level of sub-folders are styles), EXIF-rotated, made RGB, cut into squares (a centre
   crop, consecutive squares along a scroll, or tiles), with a seeded held-out split, written to
   OUT/data/. Unreadable or non-image files are skipped with a warning each (an error with
   --strict).
2. Trains each model with its config in experiments/configs/paintings.py (OUT/<model>/, an
   ordinary run directory: rerunning resumes).
3. Evaluates on the held-out squares: bits/dim for every model (one scale: 8-bit pixels), FID/KID
   with the Inception network when --inception_weights (or $GEN_JAX_INCEPTION_WEIGHTS) is given,
   and a memorisation check (`gen_jax.metrics.memorisation`): every sample's nearest training
   squares in pixel space and in a feature space, and the distances of samples against those of
   held-out squares.
4. Writes OUT/index.html, a static gallery (no server needed), and OUT/results.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags
from tqdm import tqdm

from experiments import launch, paintings_gallery
from experiments.configs import paintings as paintings_configs
from experiments.sample import sample_run
from gen_jax.data import folder as folder_lib
from gen_jax.data import load_dataset
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import memorisation
from gen_jax.metrics.protocol import extract_features, image_quality
from gen_jax.tasks import autoencoders, registry
from gen_jax.training.workdir import write_json_atomic

DATA_DIR, GALLERY_DIR = "data", "gallery"
RESULTS_FILE, MANIFEST_FILE = "results.json", "prepare.json"
IMAGE_SIZES = (32, 64)
NEIGHBOURS = 3        # nearest training squares shown beside each sample
PANEL_SAMPLES = 8     # samples with their neighbours in each memorisation panel


@dataclasses.dataclass(frozen=True)
class Likelihood:
  """How a model's eval.json gives bits/dim of the held-out squares."""
  read: Callable[[dict], tuple[float, float | None]]  # eval.json -> (bits/dim, its s.e. or None)
  what: str


def _iwae(ev):
  key = next(k for k in ev if k.startswith("nll_iwae") and k.endswith("_bpd"))
  return ev[key], None


LIKELIHOODS = {
    "vae": Likelihood(_iwae, "IWAE bound (upper bound on −log₂ p)"),
    "pixelcnn_pp": Likelihood(lambda ev: (ev["nll_bpd"], ev["nll_bpd_sem"]), "exact"),
    "ddpm": Likelihood(lambda ev: (ev["nelbo_bpd"], ev["nelbo_bpd_sem"]),
                       "full variational bound (upper bound)"),
}


def define_flags():
  flags.DEFINE_string("images", None, "The folder of pictures (sub-folders are read too).", required=True)
  flags.DEFINE_string("workdir", None, "Where the data, runs, results and gallery go.", required=True)
  flags.DEFINE_list("models", ["vae", "pixelcnn_pp", "ddpm"],
                    f"Models to train, any of {sorted(paintings_configs.MODELS)}.")
  flags.DEFINE_integer("image_size", 32, f"Square side of the examples: one of {IMAGE_SIZES}.")
  flags.DEFINE_enum("layout", "crop", list(folder_lib.LAYOUTS),
                    "crop: one centre square a picture (squares along a scroll); tiles: tiles of "
                    "--tile_size pixels, each resized to --image_size.")
  flags.DEFINE_integer("tile_size", 0, "With --layout=tiles: a tile's side in the picture's pixels.")
  flags.DEFINE_float("test_fraction", 0.1, "Share of the squares held out.")
  flags.DEFINE_integer("seed", 0, "Seed of the split, the training runs and the samples.")
  flags.DEFINE_bool("strict", False, "A file that cannot be read is an error (default: skipped with a warning).")
  flags.DEFINE_integer("max_pixels", folder_lib.DEFAULT_MAX_PIXELS,
                       "Pictures with more pixels are skipped undecoded (decompression bombs).")
  flags.DEFINE_integer("num_samples", 64, "Samples per model for the gallery and the memorisation check.")
  flags.DEFINE_integer("num_steps", 0, "Training steps of every model (0: each config's own).")
  flags.DEFINE_string("inception_weights", "", "FID Inception-v3 .npz (FID/KID are skipped without it).")
  flags.DEFINE_bool("smoke", False, "Tiny networks and a few steps (tests).")


def check_flags(f):
  unknown = [m for m in f.models if m not in paintings_configs.MODELS]
  if unknown or not f.models:
    raise launch.UsageError(f"--models={','.join(f.models)}: choose from {sorted(paintings_configs.MODELS)} "
                            "(transformer and flow are not tuned for colour pictures yet)")
  if f.image_size not in IMAGE_SIZES and not (f.smoke and f.image_size % 4 == 0 and f.image_size >= 8):
    raise launch.UsageError(f"--image_size={f.image_size}: use one of {list(IMAGE_SIZES)}"
                            " (with --smoke: any multiple of 4 from 8)")
  if f.layout == "tiles" and f.tile_size < 1:
    raise launch.UsageError("--layout=tiles needs --tile_size=N (a tile's side in the picture's pixels)")
  if f.num_samples < PANEL_SAMPLES:
    raise launch.UsageError(f"--num_samples={f.num_samples}: use at least {PANEL_SAMPLES}")
  if os.path.abspath(f.workdir).startswith(os.path.abspath(f.images) + os.sep):
    raise launch.UsageError(f"--workdir={f.workdir} lies inside --images={f.images}: put it elsewhere, "
                            "or the next run would read its own outputs as pictures")


# ---------------------------------------------------------------- 1. the data


def folder_fingerprint(folder: str, files: list[pathlib.Path], settings: dict) -> str:
  """What the prepared data depend on: every file's path, size and time (`files`, as
  `folder.list_files` lists them), and the settings."""
  digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
  root = pathlib.Path(folder)
  for path in files:
    stat = path.stat()
    digest.update(f"{path.relative_to(root)}/{stat.st_size}/{stat.st_mtime_ns}".encode())
  return digest.hexdigest()[:16]


def prepare(f, workdir: str) -> tuple[str, dict]:
  """OUT/data/examples_<size>.npz and prepare.json: made once, reused while the folder and the
  settings are unchanged; a workdir prepared from something else is refused, never overwritten."""
  settings = {"images": os.path.abspath(f.images), "image_size": f.image_size, "layout": f.layout,
              "tile_size": f.tile_size, "test_fraction": f.test_fraction, "seed": f.seed,
              "max_pixels": f.max_pixels}
  files = folder_lib.list_files(f.images)  # a missing or empty folder fails before anything is written
  fingerprint = folder_fingerprint(f.images, files, settings)
  data_dir = os.path.join(workdir, DATA_DIR)
  path = os.path.join(data_dir, f"examples_{f.image_size}.npz")
  manifest_path = os.path.join(data_dir, MANIFEST_FILE)
  if os.path.exists(manifest_path):
    with open(manifest_path) as fh:
      manifest = json.load(fh)
    if manifest.get("fingerprint") == fingerprint and os.path.exists(path):
      print(f"prepared data found in {data_dir} ({manifest['num_train']} train / "
            f"{manifest['num_test']} held-out squares); reusing it", file=sys.stderr)
      return path, manifest
    raise launch.UsageError(
        f"{workdir} holds runs on data prepared from another folder or other settings "
        f"(prepare.json: {manifest.get('settings')}); use a new --workdir, or the same settings "
        "and an unchanged folder to resume")
  prepared = folder_lib.prepare_folder(
      f.images, f.image_size, f.layout, f.tile_size, f.test_fraction, f.seed, f.strict, f.max_pixels,
      progress=lambda files: tqdm(files, desc="read pictures", unit="file", mininterval=2.0))
  folder_lib.save_prepared(prepared, path)
  manifest = {"fingerprint": fingerprint, "settings": settings, "num_pictures": prepared.num_pictures,
              "num_train": int(len(prepared.train_x)), "num_test": int(len(prepared.test_x)),
              "styles": prepared.styles, "skipped": [dataclasses.asdict(s) for s in prepared.skipped]}
  write_json_atomic(manifest_path, manifest)
  print(f"prepared {manifest['num_train']} train / {manifest['num_test']} held-out squares of "
        f"{f.image_size}x{f.image_size} from {prepared.num_pictures} pictures "
        f"({len(prepared.skipped)} files skipped) in {data_dir}", file=sys.stderr)
  return path, manifest


# ---------------------------------------------------------------- 2. training


def model_config(f, model: str, data_path: str, num_train: int):
  variants = [model] + (["smoke"] if f.smoke else []) + (["size64"] if f.image_size == 64 else [])
  config = paintings_configs.get_config(",".join(variants))
  config.data.path = data_path
  config.seed = f.seed
  config.train.batch_size = min(int(config.train.batch_size), num_train)
  if f.num_steps:
    config.train.num_steps = f.num_steps
  return config


def train_model(f, model: str, workdir: str, data_path: str, num_train: int) -> dict:
  config = model_config(f, model, data_path, num_train)
  run_dir = os.path.join(workdir, model)
  family = registry.FAMILIES[config.family]
  print(f"training {model}: {config.train.num_steps} steps of batch {config.train.batch_size} "
        f"in {run_dir}", file=sys.stderr)
  start = time.perf_counter()
  family.train_and_evaluate(config, run_dir)
  seconds = time.perf_counter() - start
  with open(os.path.join(run_dir, "eval.json")) as fh:
    ev = json.load(fh)
  return {"run_dir": run_dir, "seconds": seconds, "steps": int(config.train.num_steps),
          "batch_size": int(config.train.batch_size), "eval": ev}


# ---------------------------------------------------------------- 3. evaluation


def vae_features(run_dir: str) -> Callable[[np.ndarray], np.ndarray]:
  """x (N, S, S, 3) in [0, 1] -> the trained VAE encoder's posterior means (N, z)."""
  run = registry.load_run(run_dir, "ema_params")
  network = autoencoders.model_kind(run.config.model.kind).build(run.config.model,
                                                                 tuple(run.dataset.element_shape))
  encode = jax.jit(lambda x: network.apply(run.params, 2.0 * x - 1.0, method="encode")[0])
  return lambda x: np.concatenate([np.asarray(encode(jnp.asarray(x[i:i + 250], jnp.float32)))
                                   for i in range(0, len(x), 250)])


@dataclasses.dataclass(frozen=True)
class FeatureSpace:
  name: str
  embed: Callable[[np.ndarray], np.ndarray]  # images in [0, 1] -> (N, d)


def inception_weights(f) -> str:
  """The Inception-v3 FID weights: --inception_weights, else $GEN_JAX_INCEPTION_WEIGHTS, else ""."""
  return f.inception_weights or os.environ.get(feature_lib.INCEPTION_WEIGHTS_ENV, "")


def feature_space(inception, trained: dict) -> FeatureSpace | None:
  """Inception pool features when its network is given, else the trained VAE's latent means."""
  if inception is not None:
    return FeatureSpace("Inception-v3 pool features", lambda x: extract_features(inception, x)[0])
  if "vae" in trained:
    return FeatureSpace("the trained VAE's latent means", vae_features(trained["vae"]["run_dir"]))
  return None


def memorisation_check(name: str, samples: np.ndarray, train: np.ndarray, heldout: np.ndarray,
                       space: FeatureSpace | None, embedded: dict, out_dir: str, tag: str) -> dict:
  """Nearest training squares of each sample and of each held-out square, in pixels and in the
  feature space; panels and histograms written as PNG."""
  report = {}
  spaces = [("pixels", lambda x: x, "pixel space")]
  if space is not None:
    spaces.append(("features", space.embed, space.name))
  for key, embed, label in spaces:
    if key not in embedded:
      embedded[key] = (embed(train), embed(heldout))
    train_e, heldout_e = embedded[key]
    sample_e = embed(samples)
    sample_d, sample_i = memorisation.nearest_neighbours(sample_e, train_e, NEIGHBOURS)
    heldout_d, _ = memorisation.nearest_neighbours(heldout_e, train_e, 1)
    summary = memorisation.memorisation_summary(sample_d[:, 0], heldout_d[:, 0])
    order = np.argsort(sample_d[:, 0])[:PANEL_SAMPLES]  # the samples closest to a training square
    panel = paintings_gallery.neighbour_panel(samples[order], train[sample_i[order]],
                                              os.path.join(out_dir, f"{tag}_neighbours_{key}.png"))
    histogram = paintings_gallery.distance_histogram(
        sample_d[:, 0], heldout_d[:, 0], f"{name}: nearest training square, {label}",
        os.path.join(out_dir, f"{tag}_distances_{key}.png"))
    report[key] = {**summary, "space": label, "panel": panel, "histogram": histogram}
  return report


def evaluate_model(f, model: str, trained: dict, prepared: dict, space, embedded: dict,
                   inception, dataset, out_dir: str) -> dict:
  result = trained[model]
  samples = sample_run(result["run_dir"], f.num_samples, f.seed, batch_size=min(64, f.num_samples))
  samples = np.clip(np.asarray(samples, np.float32), 0.0, 1.0)
  value, sem = LIKELIHOODS[model].read(result["eval"])
  report = {"model": model, "bits_per_dim": value, "bits_per_dim_sem": sem,
            "likelihood": LIKELIHOODS[model].what, "steps": result["steps"],
            "batch_size": result["batch_size"], "train_seconds": result["seconds"],
            "samples": paintings_gallery.image_grid(samples, os.path.join(out_dir, f"{model}_samples.png"))}
  train, heldout = prepared["train"], prepared["test"]
  report["memorisation"] = memorisation_check(model, samples, train, heldout, space, embedded,
                                              out_dir, model)
  if inception is not None:
    quality = image_quality(samples, dataset, (), inception, jax.random.key(f.seed), lambda x: x,
                            data_seed=f.seed, reference_split="test")
    report["fid"], report["kid"] = quality["fid_inception_v3"], quality["kid_inception_v3"]
  return report


def main(argv):
  del argv
  f = flags.FLAGS
  check_flags(f)
  workdir = os.path.abspath(f.workdir)
  started = time.perf_counter()
  data_path, manifest = prepare(f, workdir)
  trained = {m: train_model(f, m, workdir, data_path, manifest["num_train"]) for m in f.models}
  out_dir = os.path.join(workdir, GALLERY_DIR)
  os.makedirs(out_dir, exist_ok=True)
  arrays = folder_lib.load_prepared_arrays(data_path)
  prepared = {"train": arrays["train_x"].astype(np.float32) / 255.0,
              "test": arrays["test_x"].astype(np.float32) / 255.0}
  weights = inception_weights(f)
  inception = feature_lib.feature_net("inception_v3", weights=weights) if weights else None
  # FID/KID's reference images: the prepared folder as a dataset (only with Inception weights).
  dataset = (load_dataset(model_config(f, f.models[0], data_path, manifest["num_train"]).data)
             if inception is not None else None)
  space = feature_space(inception, trained)
  embedded: dict = {}
  reports = [evaluate_model(f, m, trained, prepared, space, embedded, inception, dataset, out_dir)
             for m in f.models]
  heldout_grid = paintings_gallery.image_grid(prepared["test"][:f.num_samples],
                                              os.path.join(out_dir, "heldout.png"))
  style_grids = paintings_gallery.style_grids(arrays, out_dir)
  results = {"manifest": manifest, "models": reports, "heldout_grid": heldout_grid,
             "style_grids": style_grids,
             "fid": ("FID/KID with Inception-v3" if inception is not None else
                     "absent: no Inception weights given (--inception_weights or "
                     f"${feature_lib.INCEPTION_WEIGHTS_ENV})"),
             "feature_space": space.name if space else "none (train the vae or give Inception weights)",
             "total_seconds": time.perf_counter() - started}
  write_json_atomic(os.path.join(workdir, RESULTS_FILE), results)
  index = paintings_gallery.write_gallery(workdir, results, trained)
  print(f"wrote {index} ({len(reports)} models, {results['total_seconds'] / 60:.1f} min)", file=sys.stderr)


if __name__ == "__main__":
  define_flags()
  launch.run_tool(main)
