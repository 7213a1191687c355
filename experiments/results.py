r"""Regenerates README's results table from the workdirs of the documented runs.

  python -m experiments.results --runs_dir=/tmp/runs            # print the table
  python -m experiments.results --runs_dir=/tmp/runs --readme=README.md
  python -m experiments.results --runs_dir=/tmp/runs --readme=README.md --tables=flows

With --readme, the text between `<!-- results:start -->` and `<!-- results:end -->` is
replaced, and each family's sample grid is copied to docs/images/. Every row comes from a
workdir (config.json, metrics.jsonl, eval.json written by experiments.evaluate); a run
that is missing is listed as not run. Training time is the sum of the logged intervals
in metrics.jsonl (compilation included, evaluation excluded).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

from absl import app, flags
import numpy as np

from gen_jax.training.writers import read_metrics

_RUNS_DIR = flags.DEFINE_string("runs_dir", "/tmp/runs", "Folder holding one workdir per run.")
_README = flags.DEFINE_string("readme", "", "README to rewrite between the results markers.")
START, END = "<!-- results:start -->", "<!-- results:end -->"
BOLTZMANN_START, BOLTZMANN_END = "<!-- boltzmann-results:start -->", "<!-- boltzmann-results:end -->"
DIFFUSION_START, DIFFUSION_END = "<!-- diffusion-results:start -->", "<!-- diffusion-results:end -->"
FLOWS_START, FLOWS_END = "<!-- flows-results:start -->", "<!-- flows-results:end -->"
AUTOREGRESSIVE_START, AUTOREGRESSIVE_END = ("<!-- autoregressive-results:start -->",
                                            "<!-- autoregressive-results:end -->")
EBM_START, EBM_END = "<!-- ebm-results:start -->", "<!-- ebm-results:end -->"
MIXTURES_START, MIXTURES_END = "<!-- mixtures-results:start -->", "<!-- mixtures-results:end -->"
PAINTINGS_START, PAINTINGS_END = "<!-- paintings-results:start -->", "<!-- paintings-results:end -->"
GAN_START, GAN_END = "<!-- gan-results:start -->", "<!-- gan-results:end -->"
IMAGES_DIR = os.path.join("docs", "images")


@dataclasses.dataclass(frozen=True)
class Run:
  workdir: str        # name under --runs_dir
  launcher: str       # experiments.<launcher>
  config: str         # config argument
  title: str
  family: str
  dataset: str
  figure: str = ""    # samples/ file to show in README for the family


RUNS = (
    Run("ae", "vae", "experiments/configs/ae.py", "AE (Bernoulli)", "autoencoders", "mnist5k"),
    Run("dae", "vae", "experiments/configs/dae.py", "DAE (salt-and-pepper 20 %)", "autoencoders", "mnist5k"),
    Run("sae", "vae", "experiments/configs/sae.py", "SAE (ρ = 0.05, β = 1)", "autoencoders", "mnist5k"),
    Run("vae", "vae", "experiments/configs/vae.py", "VAE", "autoencoders", "mnist5k",
        "final_samples.png"),
    Run("iwae", "vae", "experiments/configs/iwae.py", "VAE trained with IWAE-5", "autoencoders", "mnist5k"),
    Run("hvae", "vae", "experiments/configs/hvae.py", "Hierarchical VAE (2 levels)", "autoencoders",
        "mnist5k"),
)
FLOORS = (("floor_mnist5k", "mnist5k"),)


def training_seconds(records) -> float:
  total, previous = 0.0, 0
  for record in records:
    if record.get("steps_per_sec", 0) > 0:
      total += (record["step"] - previous) / record["steps_per_sec"]
      previous = record["step"]
  return total


def _fmt(value, digits=2):
  return "—" if value is None else f"{value:.{digits}f}"


def _sample_columns(ev: dict, net: str) -> list[str]:
  if f"fid_{net}" not in ev:
    return ["—", "—", "—"]
  kid = f"{1e3 * ev[f'kid_{net}']:.1f} ± {1e3 * ev[f'kid_{net}_std']:.1f}"
  return [_fmt(ev[f"fid_{net}"]), kid, f"{ev[f'precision_{net}']:.2f} / {ev[f'recall_{net}']:.2f}"]


def run_row(runs_dir: str, run: Run) -> str:
  workdir = os.path.join(runs_dir, run.workdir)
  command = f"`python -m experiments.{run.launcher} --workdir={workdir} --config={run.config}`"
  eval_path = os.path.join(workdir, "eval.json")
  if not os.path.exists(eval_path):
    return f"| {run.title} | {run.dataset} | (not run) | | | | | | | {command} |"
  with open(eval_path) as f:
    ev = json.load(f)
  nll_key = next((k for k in ev if k.startswith("nll_iwae") and not k.endswith("_bpd")), None)
  if nll_key:
    nll = f"{ev[nll_key]:.2f} (IWAE-{nll_key.removeprefix('nll_iwae')})"
    elbo = f"{-ev['elbo']:.2f}"
  else:
    nll, elbo = f"{ev['recon_nll']:.2f} (recon.)", "—"
  net = ev.get("feature_net", f"{run.dataset}_cls")
  minutes = training_seconds(read_metrics(workdir)) / 60
  return " | ".join(["", run.title, run.dataset, nll, elbo, *_sample_columns(ev, net),
                     f"{ev['step']:,}", f"{minutes:.1f} min", command, ""]).strip()


def floor_row(runs_dir: str, name: str, dataset: str) -> str:
  path = os.path.join(runs_dir, name, "eval.json")
  command = f"`python -m experiments.evaluate --floor={dataset} --workdir={os.path.join(runs_dir, name)}`"
  if not os.path.exists(path):
    return f"| real test split (floor) | {dataset} | | | | | | | | {command} |"
  with open(path) as f:
    ev = json.load(f)
  return " | ".join(["", "real test split (floor)", dataset, "—", "—",
                     *_sample_columns(ev, ev["feature_net"]), "—", "—", command, ""]).strip()


def table(runs_dir: str) -> str:
  header = ("| model | data | test NLL, nats | test −ELBO, nats | FID (cls) | KID ×10³ (cls) | "
            "precision / recall (cls) | steps | training time | command |\n"
            "|---|---|---|---|---|---|---|---|---|---|")
  rows = [floor_row(runs_dir, *f) for f in FLOORS] + [run_row(runs_dir, r) for r in RUNS]
  return "\n".join([header, *rows])


def _rbm_cells(ev):
  return (f"{ev['test_log_likelihood']:.2f} ± {3 * ev['ais_log_z_std_err']:.2f}",
          f"{ev['train_log_likelihood']:.2f}",
          f"AIS log Ẑ = {ev['ais_log_z']:.2f} (s.e. {ev['ais_log_z_std_err']:.2f}, {ev['ais_chains']} chains); "
          "± is 3 s.e. of log Ẑ")


def _gaussian_rbm_cells(ev):
  return (f"{ev['test_log_likelihood']:.2f} (exact)", f"{ev['train_log_likelihood']:.2f}",
          f"exact log Z = {ev['exact_log_z']:.2f}; Gaussians fitted to the same data: diagonal "
          f"{ev['diagonal_gaussian_test_log_likelihood']:.2f}, full covariance "
          f"{ev['full_gaussian_test_log_likelihood']:.2f}")


def _dbn_cells(ev):
  iw = next(k for k in ev if k.startswith("test_log_prob_iw"))
  return (f"≥ {ev['test_log_prob_bound']:.2f} (bound); {ev[iw]:.2f} (importance-weighted, "
          f"k = {iw.removeprefix('test_log_prob_iw')})", "—",
          f"AIS log Z of the top RBM = {ev['top_ais_log_z']:.2f} (s.e. {ev['top_ais_log_z_std_err']:.2f})")


def _dbm_cells(ev):
  return (f"≥ {ev['test_variational_bound']:.2f} (mean-field bound)", f"{ev['train_variational_bound']:.2f}",
          f"AIS log Ẑ = {ev['ais_log_z']:.2f} (s.e. {ev['ais_log_z_std_err']:.2f}, {ev['ais_chains']} chains)")


def _sbn_cells(ev):
  key = next(k for k in ev if k.startswith("test_log_prob_is"))
  return (f"{ev[key]:.2f} (s.e. {ev['test_log_prob_sem']:.2f})", "—",
          f"importance sampling with the recognition net, k = {key.removeprefix('test_log_prob_is')}")


@dataclasses.dataclass(frozen=True)
class BoltzmannRun:
  workdir: str
  command: str        # after `python -m `, without --workdir
  title: str
  dataset: str
  cells: object       # eval.json -> (test log-likelihood, train, notes)


BOLTZMANN_RUNS = (
    BoltzmannRun("rbm", "experiments.rbm", "RBM, 500 hidden, PCD-1, 20,000 steps (gen_jax)", "mnist5k",
                 _rbm_cells),
    BoltzmannRun("rbm_sklearn", "experiments.rbm_sklearn_baseline",
                 "RBM, 500 hidden, scikit-learn BernoulliRBM, same split, same AIS", "mnist5k", _rbm_cells),
    BoltzmannRun("gaussian_rbm", "experiments.rbm --config=experiments/configs/gaussian_rbm.py",
                 "Gaussian–Bernoulli RBM, 20 hidden, PCD-1 (continuous: log-density)", "digits, dequantized",
                 _gaussian_rbm_cells),
    BoltzmannRun("dbn", "experiments.dbn", "DBN 784-500-500, greedy PCD-1, 10,000 steps per layer", "mnist5k",
                 _dbn_cells),
    BoltzmannRun("dbm", "experiments.dbm",
                 "DBM 784-500-500, weight-doubled pre-training, then mean field + PCD, 10,000 steps",
                 "mnist5k", _dbm_cells),
    BoltzmannRun("dbm_no_pretraining", "experiments.dbm --config=experiments/configs/dbm.py:no_pretraining",
                 "DBM 784-500-500 from a random start (no pre-training)", "mnist5k", _dbm_cells),
    BoltzmannRun("sbn", "experiments.sbn", "SBN 784-200-200, wake-sleep, 20,000 steps", "mnist5k", _sbn_cells),
)


def boltzmann_table(runs_dir: str) -> str:
  lines = ["| model | data | test log-likelihood, nats | train | how it is estimated | command |",
           "|---|---|---|---|---|---|"]
  for run in BOLTZMANN_RUNS:
    workdir = os.path.join(runs_dir, run.workdir)
    command = f"`python -m {run.command.split(' ')[0]} --workdir={workdir}" + (
        f" {run.command.split(' ', 1)[1]}`" if " " in run.command else "`")
    path = os.path.join(workdir, "eval.json")
    if not os.path.exists(path):
      lines.append(f"| {run.title} | {run.dataset} | (not run) | | | {command} |")
      continue
    with open(path) as f:
      test, train, notes = run.cells(json.load(f))
    lines.append(f"| {run.title} | {run.dataset} | {test} | {train} | {notes} | {command} |")
  return "\n".join(lines)


def _load(path):
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def _bpd(ev, name="nelbo"):
  return f"{ev[name + '_bpd']:.3f} ± {ev[name + '_bpd_sem']:.3f} bits/dim"


def _fid(ev, net):
  if f"fid_{net}" not in ev:
    return "—"
  return (f"FID {ev[f'fid_{net}']:.2f}, KID×10³ {1e3 * ev[f'kid_{net}']:.1f} ± "
          f"{1e3 * ev[f'kid_{net}_std']:.1f} ({ev['num_samples']} samples)")


def _ddpm_image_cells(ev, net):
  terms = ", ".join(f"{name} {ev[name + '_bpd']:.3f}" for name in ("prior_kl", "diffusion_kl", "decoder_nll"))
  return (f"full bound {_bpd(ev)} ({terms}; {ev['bound_examples']} test images)", _fid(ev, net))


def _vdm_cells(ev, net):
  terms = ", ".join(f"{name} {ev[name + '_bpd']:.3f}" for name in ("prior_kl", "recon_nll", "diffusion"))
  spread = ""
  if "diffusion_draw_std" in ev:
    spread = (f"; one-draw std of L_diff {ev['diffusion_draw_std']:.1f} nats with the learned γ vs "
              f"{ev['diffusion_linear_gamma_draw_std']:.1f} with the linear γ (means "
              f"{ev['diffusion']:.1f} vs {ev['diffusion_linear_gamma']:.1f})")
  return (f"continuous bound {_bpd(ev)} ({terms}; {ev['bound_examples']} test images{spread})",
          _fid(ev, net))


def _points_bound_cells(ev, net):
  return (f"bound {ev['nelbo']:.3f} ± {ev['nelbo_sem']:.3f} nats (true NLL of the same points "
          f"{ev['data_nll']:.3f}; {ev['bound_examples']} test points)", "—")


def _ode_cells(ev, net):
  return (f"ODE NLL {ev['ode_nll']:.3f} ± {ev['ode_nll_sem']:.3f} nats (true NLL of the same points "
          f"{ev['ode_data_nll']:.3f}; {ev['ode_examples']} test points)", "—")


@dataclasses.dataclass(frozen=True)
class DiffusionRun:
  workdir: str
  config: str
  title: str
  dataset: str
  cells: object  # (eval.json, feature net) -> (likelihood, sample quality)


DIFFUSION_RUNS = (
    DiffusionRun("ddpm_mnist5k", "experiments/configs/diffusion.py",
                 "DDPM, ε target, L_simple, T = 1000; samples DDIM-50", "mnist5k", _ddpm_image_cells),
    DiffusionRun("cfg_digits", "experiments/configs/cfg_digits.py",
                 "class-conditional DDPM, label dropout 0.1; samples DDIM-50 at w = 1", "digits",
                 _ddpm_image_cells),
    DiffusionRun("vdm_digits", "experiments/configs/vdm_digits.py",
                 "VDM, learned monotone γ (variance-minimising); 200 ancestral steps", "digits", _vdm_cells),
    DiffusionRun("swiss_roll", "experiments/configs/swiss_roll.py",
                 "DDPM, MLP, T = 1000, Gaussian decoder (Figure 1)", "swiss roll", _points_bound_cells),
    DiffusionRun("ode_eight_gaussians", "experiments/configs/ode_2d.py",
                 "VP SDE, MLP; probability-flow ODE likelihood", "8 gaussians (entropy ≈ 2.84)", _ode_cells),
    DiffusionRun("ode_checkerboard", "experiments/configs/ode_2d.py:checkerboard",
                 "VP SDE, MLP; probability-flow ODE likelihood", "checkerboard (ln 32 ≈ 3.47)", _ode_cells),
)
DIFFUSION_FLOORS = (("floor_mnist5k_grayscale", "mnist5k"), ("floor_digits_grayscale", "digits"))
# (workdir, sweep, swept field, label, extra flags)
SWEEP_RUNS = (("ddpm_mnist5k", "ddim_steps", "num_steps", "DDIM steps (η = 0)", " --num_samples=250"),
              ("cfg_digits", "guidance", "guidance_weight", "guidance weight w", ""))


def diffusion_table(runs_dir: str) -> str:
  lines = ["| model | data | likelihood | sample quality (dataset classifier features) | steps | "
           "training time | command |", "|---|---|---|---|---|---|---|"]
  for name, dataset in DIFFUSION_FLOORS:
    workdir = os.path.join(runs_dir, name)
    command = f"`python -m experiments.evaluate --floor={dataset} --grayscale --workdir={workdir}`"
    ev = _load(os.path.join(workdir, "eval.json"))
    quality = "(not run)" if ev is None else _fid(ev, ev["feature_net"])
    lines.append(f"| real test split (floor), grayscale | {dataset} | — | {quality} | — | — | {command} |")
  for run in DIFFUSION_RUNS:
    workdir = os.path.join(runs_dir, run.workdir)
    command = f"`python -m experiments.diffusion --workdir={workdir} --config={run.config}`"
    ev = _load(os.path.join(workdir, "eval.json"))
    if ev is None:
      lines.append(f"| {run.title} | {run.dataset} | (not run) | | | | {command} |")
      continue
    likelihood, quality = run.cells(ev, ev.get("feature_net", f"{run.dataset}_cls"))
    minutes = training_seconds(read_metrics(workdir)) / 60
    lines.append(f"| {run.title} | {run.dataset} | {likelihood} | {quality} | {ev['step']:,} | "
                 f"{minutes:.1f} min | {command} |")
  for name, sweep, field, label, extra in SWEEP_RUNS:
    workdir = os.path.join(runs_dir, name)
    result = _load(os.path.join(workdir, f"sweep_{sweep}.json"))
    command = f"`python -m experiments.diffusion_sweep --workdir={workdir} --sweep={sweep}{extra}`"
    if result is None:
      lines += ["", f"{label} on {name}: (not run) {command}"]
      continue
    net = result["rows"][0]["feature_net"]
    lines += ["", f"{label}, {name} ({result['dataset']}, {result['num_samples']} samples per row, "
              f"{result['device']}): {command}", "",
              f"| {label} | FID ({net}) | KID ×10³ | precision / recall | seconds per sample |",
              "|---|---|---|---|---|"]
    for row in result["rows"]:
      lines.append(f"| {row[field]:g} | {row[f'fid_{net}']:.2f} | {1e3 * row[f'kid_{net}']:.1f} ± "
                   f"{1e3 * row[f'kid_{net}_std']:.1f} | {row[f'precision_{net}']:.2f} / "
                   f"{row[f'recall_{net}']:.2f} | {row['seconds_per_sample']:.4f} |")
  return "\n".join(lines)


# The 2-D flow runs: every kind on every density (workdir flow_<kind>_<density>).
FLOW_KINDS = ("realnvp", "maf", "spline")
FLOW_DENSITIES = ("eight_gaussians", "checkerboard", "two_moons", "rings")
# (dataset, title) of the image runs (workdir flow_glow_<dataset>, config flows_<dataset>.py).
FLOW_IMAGE_RUNS = (("digits", "Glow, 2 levels x 6 steps, uniform dequantization"),
                   ("mnist5k", "Glow, 2 levels x 4 steps, uniform dequantization"))


def launched_row(launcher: str, runs_dir: str, name: str, config_arg: str, leading: str, cells,
                 num_cells: int) -> str:
  """One table row of a run of experiments.<launcher>: `leading` cells, then cells(eval.json),
  steps, time, command."""
  workdir = os.path.join(runs_dir, name)
  command = f"`python -m experiments.{launcher} --workdir={workdir} --config={config_arg}`"
  ev = _load(os.path.join(workdir, "eval.json"))
  if ev is None:
    return f"| {leading} | (not run) |{' |' * (num_cells + 1)} {command} |"
  minutes = training_seconds(read_metrics(workdir)) / 60
  return f"| {leading} | {cells(ev)} | {ev['step']:,} | {minutes:.1f} min | {command} |"


def _points_nll_cells(ev):
  """test NLL ± sem | the true density's NLL ± sem | the gap (2-D density runs)."""
  return (f"{ev['nll']:.3f} ± {ev['nll_sem']:.3f} | {ev['data_nll']:.3f} ± {ev['data_nll_sem']:.3f} | "
          f"{ev['nll'] - ev['data_nll']:+.3f}")


def _flow_points_cells(ev):
  return f"{_points_nll_cells(ev)} | {ev['density_integral']:.4f}"


def _bpd_cell(ev):
  return f"{ev['nll_bpd']:.3f} ± {ev['nll_bpd_sem']:.3f}"


def _flow_image_cells(ev):
  return f"{_bpd_cell(ev)} | {ev['num_examples']:,}"


def flows_table(runs_dir: str) -> str:
  lines = ["| data | flow | test NLL (nats) | true NLL of the same points | gap | ∫ p over the grid | "
           "steps | training time | command |", "|---|---|---|---|---|---|---|---|---|"]
  lines += [launched_row("flows", runs_dir, f"flow_{kind}_{density}",
                      f"experiments/configs/flows_2d.py:{density} --config.model.kind={kind}",
                      f"{density} | {kind}", _flow_points_cells, 4)
            for density in FLOW_DENSITIES for kind in FLOW_KINDS]
  lines += ["", "| data | flow | test bound (bits/dim) | test images | steps | training time | command |",
            "|---|---|---|---|---|---|---|"]
  lines += [launched_row("flows", runs_dir, f"flow_glow_{dataset}", f"experiments/configs/flows_{dataset}.py",
                      f"{dataset} | {title}", _flow_image_cells, 2)
            for dataset, title in FLOW_IMAGE_RUNS]
  return "\n".join(lines)


FLOW_FIGURES = tuple((f"flow_{kind}_{density}", "samples/final_density.png",
                      f"flows_{kind}_{density}_density.png")
                     for kind in FLOW_KINDS for density in FLOW_DENSITIES) + (
    ("flow_spline_eight_gaussians", "samples/final_chain.png", "flows_spline_eight_gaussians_chain.png"),
    ("flow_glow_digits", "samples/final_samples_by_temperature.png", "flows_glow_digits_temperatures.png"),
    ("flow_glow_mnist5k", "samples/final_samples_by_temperature.png", "flows_glow_mnist5k_temperatures.png"))


# Autoregressive runs: (workdir, config argument, data label, model label).
AR_MNIST5K = "experiments/configs/autoregressive_mnist5k.py"
AR_DIGITS = "experiments/configs/autoregressive_digits.py"
AR_IMAGE_RUNS = tuple(
    (f"ar_mnist5k_{kind}", f"{AR_MNIST5K} --config.model.kind={kind}{steps}", "mnist5k, binarized", kind)
    for kind, steps in (("fvsbn", ""), ("fixed_order", ""), ("made", ""), ("nade", ""),
                        ("pixelcnn", " --config.train.num_steps=1000"),
                        ("gru", " --config.train.num_steps=2000"), ("lstm", " --config.train.num_steps=1000"),
                        ("transformer", " --config.train.num_steps=300 --config.model.num_layers=2 "
                                        "--config.model.embed_dim=32 --config.train.batch_size=32"))) + tuple(
    (f"ar_digits_{kind}", f"{AR_DIGITS} --config.model.kind={kind}", "digits, binarized", kind)
    for kind in ("fvsbn", "fixed_order", "made", "nade", "gru", "lstm", "pixelcnn", "transformer")) + (
    ("ar_digits_made8", f"{AR_DIGITS} --config.model.kind=made --config.model.num_masks=8",
     "digits, binarized", "made, 8 orderings (order-agnostic; the ensemble's density)"),
    ("ar_digits_cond_pixelcnn", f"{AR_DIGITS}:conditional --config.model.kind=pixelcnn", "digits, binarized",
     "pixelcnn, class-conditional (marginal over the 10 labels)"),) + tuple(
    (f"ar_digits8_{kind}", f"{AR_DIGITS}:8bit --config.model.kind={kind}", "digits, 8-bit", kind)
    for kind in ("pixelcnn_pp", "transformer_8bit")) + (
    ("ar_mnist5k8_pixelcnn_pp", f"{AR_MNIST5K}:8bit --config.model.kind=pixelcnn_pp --config.train.num_steps=1000",
     "mnist5k, 8-bit", "pixelcnn_pp"),
    ("ar_mnist5k8_transformer_8bit", f"{AR_MNIST5K}:8bit --config.model.kind=transformer_8bit "
     "--config.train.num_steps=300 --config.model.num_layers=2 --config.model.embed_dim=32 "
     "--config.train.batch_size=32", "mnist5k, 8-bit", "transformer_8bit"),)
AR_DENSITIES = ("eight_gaussians", "checkerboard", "two_moons", "rings")


def _ar_binary_cells(ev):
  return f"{ev['nll']:.2f} ± {ev['nll_sem']:.2f} | {ev['nll_bpd']:.4f} | {ev['num_examples']:,}"


def _ar_points_cells(ev):
  return (f"{ev['nll']:.3f} ± {ev['nll_sem']:.3f} | {ev['data_nll']:.3f} ± {ev['data_nll_sem']:.3f} | "
          f"{ev['nll'] - ev['data_nll']:+.3f}")


def autoregressive_table(runs_dir: str) -> str:
  lines = ["| data | model | exact test NLL (nats) | bits/dim | test images | steps | training time | command |",
           "|---|---|---|---|---|---|---|---|"]
  lines += [launched_row("autoregressive", runs_dir, name, config_arg, f"{data} | {model}", _ar_binary_cells, 3)
            for name, config_arg, data, model in AR_IMAGE_RUNS]
  lines += ["", "| data | model | test NLL (nats) | true NLL of the same points | gap | steps | training time | command |",
            "|---|---|---|---|---|---|---|---|"]
  lines += [launched_row("autoregressive", runs_dir, f"ar_2d_{density}",
                         f"experiments/configs/autoregressive_2d.py:{density}",
                         f"{density} | mixture_made", _ar_points_cells, 3) for density in AR_DENSITIES]
  return "\n".join(lines)


AR_FIGURES = (("ar_mnist5k_pixelcnn", "samples/final_samples.png", "autoregressive_pixelcnn_mnist5k_samples.png"),
              ("ar_digits_cond_pixelcnn", "samples/final_samples_by_class.png",
               "autoregressive_pixelcnn_digits_by_class.png"),
              ("ar_2d_checkerboard", "samples/final_density.png", "autoregressive_mixture_made_checkerboard.png"))


# EBM runs: every way of getting negatives on three 2-D densities (workdir ebm_2d_<density>_<rule>),
# and the image runs (workdir ebm_<dataset>, config ebm_<dataset>.py) beside the real-data floor.
EBM_RULES = ("replay", "short_run", "cd", "dsm", "ssm")
EBM_DENSITIES = ("eight_gaussians", "two_moons", "checkerboard")
EBM_IMAGE_DATASETS = ("digits", "mnist5k")
# Replay runs with another sampler: (workdir suffix, override, title).
EBM_SAMPLER_VARIANTS = (
    ("sigma", "--config.sampler.noise_scale=0.05", "replay, the seeds' Algorithm 1 with σ = 0.05 set apart (not √(2η) = 0.141)"),
    ("mala", "--config.sampler.name=mala", "replay, MALA chains"))


def _ebm_points_cells(ev):
  return (f"{ev['nll']:.3f} ± {ev['nll_sem']:.3f} | {ev['data_nll']:.3f} ± {ev['data_nll_sem']:.3f} | "
          f"{ev['nll'] - ev['data_nll']:+.3f}")


def _ebm_image_cells(ev):
  net = f"{ev['dataset']}_cls"
  return (f"{ev['ais_log_z']:.1f} ± {ev['ais_log_z_std_err']:.2f} | {ev['nll_bpd']:.3f} | "
          f"{quality_cell(ev, net, 'fresh/')} | {quality_cell(ev, net, 'buffer/')}")


def quality_cell(ev, net: str, prefix: str = "") -> str:
  """"FID / KID×10³ / precision / recall" of eval.json keys `<prefix><metric>_<net>` ("—" if absent)."""
  if f"{prefix}fid_{net}" not in ev:
    return "—"
  return (f"{ev[f'{prefix}fid_{net}']:.2f} / {1e3 * ev[f'{prefix}kid_{net}']:.1f} / "
          f"{ev[f'{prefix}precision_{net}']:.2f} / {ev[f'{prefix}recall_{net}']:.2f}")


def grayscale_floor_cells(runs_dir: str, dataset: str):
  """(FID / KID×10³ / precision / recall of the real test split against the training split, the
  command) — the floor of the image-sample metrics."""
  workdir = os.path.join(runs_dir, f"floor_{dataset}_grayscale")
  command = f"`python -m experiments.evaluate --floor={dataset} --grayscale --workdir={workdir}`"
  ev = _load(os.path.join(workdir, "eval.json"))
  if ev is None:
    return "(not run)", command
  return quality_cell(ev, ev["feature_net"]), command


def ebm_table(runs_dir: str) -> str:
  lines = ["| data | negatives | exact test NLL (nats) | true NLL of the same points | gap | steps | "
           "training time | command |", "|---|---|---|---|---|---|---|---|"]
  lines += [launched_row("ebm", runs_dir, f"ebm_2d_{density}_{rule}",
                         f"experiments/configs/ebm_2d.py:{density} --config.train.negatives={rule}",
                         f"{density} | {rule}", _ebm_points_cells, 3)
            for density in EBM_DENSITIES for rule in EBM_RULES]
  lines += [launched_row("ebm", runs_dir, f"ebm_2d_eight_gaussians_replay_{suffix}",
                         f"experiments/configs/ebm_2d.py:eight_gaussians --config.train.negatives=replay {override}",
                         f"eight_gaussians | {title}", _ebm_points_cells, 3)
            for suffix, override, title in EBM_SAMPLER_VARIANTS]
  lines += ["", "| data | model | AIS log Ẑ ± s.e. | test bits/dim (from the AIS log Ẑ) | fresh chains: "
            "FID / KID×10³ / precision / recall (cls) | replay buffer: the same | steps | training time | command |",
            "|---|---|---|---|---|---|---|---|---|"]
  for dataset in EBM_IMAGE_DATASETS:
    floor, command = grayscale_floor_cells(runs_dir, dataset)
    lines.append(f"| {dataset} | real test split (floor) | — | — | {floor} | — | — | — | {command} |")
    lines.append(launched_row("ebm", runs_dir, f"ebm_{dataset}", f"experiments/configs/ebm_{dataset}.py",
                              f"{dataset} | conv energy, replay buffer", _ebm_image_cells, 4))
  return "\n".join(lines)


EBM_FIGURES = tuple((f"ebm_2d_checkerboard_{rule}", "samples/final_density.png", f"ebm_{rule}_checkerboard_density.png")
                    for rule in ("replay", "cd", "ssm")) + (
    ("ebm_2d_two_moons_replay", "samples/final_energy_landscape.png", "ebm_two_moons_energy_landscape.png"),
    ("ebm_2d_two_moons_replay", "samples/final_trajectories.png", "ebm_two_moons_trajectories.png"),
    ("ebm_digits", "samples/final_replay_buffer.png", "ebm_digits_replay_buffer.png"),
    ("ebm_digits", "samples/final_fresh_chains.png", "ebm_digits_fresh_chains.png"),
    ("ebm_digits", "samples/final_trajectories.png", "ebm_digits_trajectories.png"),
    ("ebm_mnist5k", "samples/final_fresh_chains.png", "ebm_mnist5k_fresh_chains.png"))


# GAN runs: on PacGAN's ring and grid, every loss over seeds (workdir gan_2d_<density>_<name>_s<seed>,
# the default config otherwise), and the image runs (workdir gan_<dataset>[_conditional]).
# Each 2-D row: (label, workdir name, config overrides).
GAN_2D_ROWS = tuple((loss, loss, f"--config.gan.loss={loss}")
                    for loss in ("hinge", "non_saturating", "minimax", "wasserstein", "least_squares")) + (
    ("wasserstein + GP (WGAN-GP's toy setup: λ 0.1, 5 critic steps of 256, Adam 1e-4, β (0.5, 0.9))",
     "wgan_gp", "--config.gan.loss=wasserstein --config.gan.gradient_penalty=0.1 --config.gan.critic_steps=5 "
     "--config.optim.generator.learning_rate=1e-4 --config.optim.discriminator.learning_rate=1e-4 "
     "--config.optim.b2=0.9 --config.train.batch_size=1280"),)
GAN_DEFAULT_LOSS = "hinge"   # gan_2d.py's
GAN_DENSITIES = ("ring_of_gaussians", "grid_of_gaussians")
GAN_SEEDS = (0, 1, 2, 3, 4)
# PacGAN's Table (Lin et al. 2018), modes captured, mean ± sd over its runs.
PACGAN_MODES = {"ring_of_gaussians": "GAN 6.3 ± 0.5, PacGAN2 7.9", "grid_of_gaussians": "GAN 17.3, PacGAN2 24.8"}


def _mean_sd(values, scale=1.0, digits=2):
  """"mean ± sd" over seeds (sd with ddof 1); the value alone for one seed."""
  v = scale * np.asarray(values, np.float64)
  return f"{v.mean():.{digits}f}" + (f" ± {v.std(ddof=1):.{digits}f}" if len(v) > 1 else "")


def gan_table(runs_dir: str) -> str:
  lines = ["| data | loss | seeds run | modes captured | high-quality % | reverse KL | published (modes) | "
           "steps | command (seed S) |", "|---|---|---|---|---|---|---|---|---|"]
  for density in GAN_DENSITIES:
    for label, name, overrides in GAN_2D_ROWS:
      workdir = lambda seed: os.path.join(runs_dir, f"gan_2d_{density}_{name}_s{seed}")
      command = (f"`python -m experiments.gan --workdir={runs_dir}/gan_2d_{density}_{name}_sS "
                 f"--config=experiments/configs/gan_2d.py:{density} {overrides} --config.seed=S`")
      if name == GAN_DEFAULT_LOSS:
        label += " (default)"
      evs = [ev for seed in GAN_SEEDS if (ev := _load(os.path.join(workdir(seed), "eval.json")))]
      if not evs:
        lines.append(f"| {density} | {label} | (not run) | | | | | | {command} |")
        continue
      seeds = ", ".join(str(s) for s in GAN_SEEDS if os.path.exists(os.path.join(workdir(s), "eval.json")))
      published = PACGAN_MODES[density] if name == GAN_DEFAULT_LOSS else ""
      lines.append(f"| {density} | {label} | {seeds} | {_mean_sd([e['modes_captured'] for e in evs], digits=1)} | "
                   f"{_mean_sd([e['high_quality_fraction'] for e in evs], 100, 1)} | "
                   f"{_reverse_kl_cell([e['reverse_kl'] for e in evs])} | {published} | {evs[0]['step']:,} | {command} |")
  lines += ["", "| data | model | FID / KID×10³ / precision / recall (cls) | steps | training time | command |",
            "|---|---|---|---|---|---|"]
  for dataset in ("digits", "mnist5k"):
    floor, command = grayscale_floor_cells(runs_dir, dataset)
    lines.append(f"| {dataset} | real test split (floor) | {floor} | — | — | {command} |")
    for variant, title in (("", "DCGAN"), (":conditional", "DCGAN, class-conditional (projection D)")):
      name = f"gan_{dataset}" + ("_conditional" if variant else "")
      lines.append(launched_row("gan", runs_dir, name, f"experiments/configs/gan_{dataset}.py{variant}",
                                f"{dataset} | {title}", _gan_image_cells, 1))
  return "\n".join(lines)


def _reverse_kl_cell(values) -> str:
  """mean ± sd over the runs with a finite reverse KL; a run without one high-quality sample
  has KL = ∞ (PacGAN's definition) and is counted apart."""
  finite = [v for v in values if np.isfinite(v)]
  cell = _mean_sd(finite, digits=3) if finite else "—"
  missing = len(values) - len(finite)
  return cell + (f" (∞ in {missing} run{'s' * (missing > 1)}: no high-quality sample)" if missing else "")


def _gan_image_cells(ev):
  return quality_cell(ev, ev.get("feature_net", f"{ev['dataset']}_cls"))


GAN_FIGURES = (("gan_2d_ring_of_gaussians_hinge_s0", "samples/final_game.png", "gan_ring_game.png"),
               ("gan_2d_grid_of_gaussians_hinge_s0", "samples/final_game.png", "gan_grid_game.png"),
               ("gan_mnist5k_conditional", "samples/final_samples_by_class.png", "gan_mnist5k_by_class.png"),
               ("gan_mnist5k", "samples/final_interpolations.png", "gan_mnist5k_interpolations.png"))


# (workdir, file in it, name under docs/images/) of the figures README shows by name.
BOLTZMANN_FIGURES = (
    ("rbm", "samples/final_samples.png", "boltzmann_rbm_mnist5k_samples.png"),
    ("dbm", "samples/final_samples.png", "boltzmann_dbm_mnist5k_samples.png"),
    ("dbn", "samples/final_samples.png", "boltzmann_dbn_mnist5k_samples.png"),
    ("hopfield", "capacity.png", "boltzmann_hopfield_capacity.png"),
)
DIFFUSION_FIGURES = (
    ("ddpm_mnist5k", "samples/final_samples.png", "diffusion_ddpm_mnist5k_samples.png"),
    ("ddpm_mnist5k", "sweep_ddim_steps.png", "diffusion_ddpm_mnist5k_ddim_steps.png"),
    ("cfg_digits", "guidance_w0.png", "diffusion_cfg_digits_w0.png"),
    ("cfg_digits", "guidance_w4.png", "diffusion_cfg_digits_w4.png"),
    ("cfg_digits", "sweep_guidance.png", "diffusion_cfg_digits_guidance.png"),
    ("vdm_digits", "samples/final_samples.png", "diffusion_vdm_digits_samples.png"),
    ("vdm_digits", "samples/final_gamma.png", "diffusion_vdm_digits_gamma.png"),
    ("swiss_roll", "samples/final_trajectories.png", "diffusion_swiss_roll_figure1.png"),
    ("ode_eight_gaussians", "samples/final_samples.png", "diffusion_ode_eight_gaussians_samples.png"),
    ("ode_checkerboard", "samples/final_samples.png", "diffusion_ode_checkerboard_samples.png"),
)


def copy_named_figures(runs_dir: str, repo_root: str, figures) -> list[str]:
  copied = []
  for workdir, name, target_name in figures:
    source = os.path.join(runs_dir, workdir, name)
    if os.path.exists(source):
      target = os.path.join(repo_root, IMAGES_DIR, target_name)
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copyfile(source, target)
      copied.append(os.path.relpath(target, repo_root))
  return copied


def copy_figures(runs_dir: str, repo_root: str) -> list[str]:
  copied = []
  for run in RUNS:
    source = os.path.join(runs_dir, run.workdir, "samples", run.figure)
    if run.figure and os.path.exists(source):
      target = os.path.join(repo_root, IMAGES_DIR, f"{run.family}_{run.workdir}_{run.dataset}_samples.png")
      os.makedirs(os.path.dirname(target), exist_ok=True)
      shutil.copyfile(source, target)
      copied.append(os.path.relpath(target, repo_root))
  return copied


def rewrite_readme(path: str, text: str, start: str = START, end: str = END):
  with open(path) as f:
    readme = f.read()
  if start not in readme or end not in readme:
    raise ValueError(f"{path} has no {start} ... {end} markers to replace")
  head, rest = readme.split(start, 1)
  _, tail = rest.split(end, 1)
  with open(path, "w") as f:
    f.write(f"{head}{start}\n{text}\n{end}{tail}")


def write_autoencoder_table(runs_dir: str, readme: str, root: str) -> str:
  text = table(runs_dir)
  images = "\n".join(f"![{os.path.basename(p)}]({p})" for p in copy_figures(runs_dir, root))
  if readme:
    rewrite_readme(readme, text + ("\n\n" + images if images else ""))
  return text


def write_boltzmann_table(runs_dir: str, readme: str, root: str) -> str:
  text = boltzmann_table(runs_dir)
  if readme:
    rewrite_readme(readme, text, BOLTZMANN_START, BOLTZMANN_END)
    copy_named_figures(runs_dir, root, BOLTZMANN_FIGURES)  # shown below the table
  return text


def write_diffusion_table(runs_dir: str, readme: str, root: str) -> str:
  text = diffusion_table(runs_dir)
  if readme:
    images = copy_named_figures(runs_dir, root, DIFFUSION_FIGURES)
    rewrite_readme(readme, text + "\n\n" + "\n".join(f"![{os.path.basename(p)}]({p})" for p in images),
                   DIFFUSION_START, DIFFUSION_END)
  return text


# Gaussian mixtures: EM with K = 8 and 25 on every 2-D density (workdir mixtures_2d_<density>_k<K>),
# the gradient route with K = 8 (…_k8_gradient), and the image baselines (mixtures_digits,
# mixtures_mnist5k) beside the other families' 8-bit rows that share their bound's scale.
MIXTURE_DENSITIES = ("eight_gaussians", "two_moons", "checkerboard", "swiss_roll", "rings",
                     "ring_of_gaussians", "grid_of_gaussians")
MIXTURE_COMPONENTS = (8, 25)
MIXTURE_GRADIENT_DENSITIES = ("eight_gaussians", "two_moons", "checkerboard")
EIGHT_BIT_PEERS = {"digits": (("PixelCNN++ (8-bit, discretized logistic mixture)", "ar_digits8_pixelcnn_pp"),
                              ("causal transformer (8-bit tokens)", "ar_digits8_transformer_8bit"),
                              ("EBM (log Z by AIS)", "ebm_digits")),
                   "mnist5k": (("PixelCNN++ (8-bit, discretized logistic mixture)", "ar_mnist5k8_pixelcnn_pp"),
                               ("causal transformer (8-bit tokens)", "ar_mnist5k8_transformer_8bit"),
                               ("EBM (log Z by AIS)", "ebm_mnist5k"))}


def _mixture_points_cells(ev):
  return f"{_points_nll_cells(ev)} | {ev.get('em_iterations', '—')} | {ev['bic']:,.0f}"


def _mixture_image_cells(ev):
  return f"{_bpd_cell(ev)} | {ev.get('em_iterations', '—')}"


def mixtures_table(runs_dir: str) -> str:
  lines = ["| data | fit | test NLL (nats) | true NLL | gap | EM iterations | BIC (train) | steps | "
           "training time | command |", "|---|---|---|---|---|---|---|---|---|---|"]
  for density in MIXTURE_DENSITIES:
    for k in MIXTURE_COMPONENTS:
      lines.append(launched_row("mixtures", runs_dir, f"mixtures_2d_{density}_k{k}",
                                f"experiments/configs/mixtures_2d.py:{density} --config.model.num_components={k}",
                                f"{density} | EM, K = {k} full", _mixture_points_cells, 5))
    if density in MIXTURE_GRADIENT_DENSITIES:
      lines.append(launched_row("mixtures", runs_dir, f"mixtures_2d_{density}_k8_gradient",
                                f"experiments/configs/mixtures_2d.py:{density},gradient",
                                f"{density} | gradient (Adam), K = 8 full", _mixture_points_cells, 5))
  lines += ["", "| data | model | test NLL (bits/dim, 8-bit) | EM iterations | steps | training time | command |",
            "|---|---|---|---|---|---|---|"]
  for dataset, variant, title in (("digits", "", "GMM, EM, K = 10 full"),
                                  ("mnist5k", ":mnist5k", "GMM, EM, K = 10 diagonal")):
    lines.append(launched_row("mixtures", runs_dir, f"mixtures_{dataset}",
                              f"experiments/configs/mixtures_digits.py{variant}", f"{dataset} | {title}",
                              _mixture_image_cells, 2))
    for label, name in EIGHT_BIT_PEERS[dataset]:
      ev = _load(os.path.join(runs_dir, name, "eval.json"))
      cells = f"{_bpd_cell(ev)} | — | {ev['step']:,}" if ev else "(not run) | — |"
      lines.append(f"| {dataset} | {label} | {cells} | | its own table (workdir {name}) |")
  return "\n".join(lines)


MIXTURE_FIGURES = (("mixtures_2d_rings_k25", "samples/final_em_iterations.png", "mixtures_rings_em_iterations.png"),
                   ("mixtures_2d_two_moons_k8", "samples/final_em_vs_gradient.png", "mixtures_two_moons_em_vs_gradient.png"),
                   ("mixtures_2d_checkerboard_k25", "samples/final_mixture.png", "mixtures_checkerboard_k25.png"),
                   ("mixtures_digits", "samples/final_samples.png", "mixtures_digits_samples.png"))


def table_writer(make_table, figures, start: str, end: str):
  """A table writer: the table between `start` and `end`, and `figures` copied to docs/images/
  (README shows them below the table by name)."""

  def write(runs_dir: str, readme: str, root: str) -> str:
    text = make_table(runs_dir)
    if readme:
      copy_named_figures(runs_dir, root, figures)
      rewrite_readme(readme, text, start, end)
    return text

  return write


write_flows_table = table_writer(flows_table, FLOW_FIGURES, FLOWS_START, FLOWS_END)
write_autoregressive_table = table_writer(autoregressive_table, AR_FIGURES, AUTOREGRESSIVE_START,
                                          AUTOREGRESSIVE_END)
write_ebm_table = table_writer(ebm_table, EBM_FIGURES, EBM_START, EBM_END)
write_gan_table = table_writer(gan_table, GAN_FIGURES, GAN_START, GAN_END)
write_mixtures_table = table_writer(mixtures_table, MIXTURE_FIGURES, MIXTURES_START, MIXTURES_END)


# The picture-folder application on the photo-tile folder (README's paintings section).
PAINTINGS_RUN = "paintings_photos32"
PAINTINGS_PHOTOS = "photos"
PAINTINGS_FLAGS = "--layout=tiles --tile_size=32"
PAINTINGS_FIGURES = tuple((PAINTINGS_RUN, f"gallery/{name}.png", f"paintings_{name}.png")
                          for name in ("vae_samples", "pixelcnn_pp_samples", "ddpm_samples", "heldout",
                                       "ddpm_neighbours_pixels", "ddpm_distances_pixels"))
PAINTINGS_SCREENSHOT = "paintings_gallery.png"


def paintings_table(runs_dir: str) -> str:
  workdir = os.path.join(runs_dir, PAINTINGS_RUN)
  results = _load(os.path.join(workdir, "results.json"))
  if not results:
    return f"(no results.json in {workdir} yet)"
  manifest = results["manifest"]
  lines = ["| model | held-out bits/dim | likelihood | steps × batch | training + evaluation | NN distance, "
           "samples / held-out (pixels) | near copies (pixels) | NN ratio (VAE latents) | near copies "
           "(VAE latents) |", "|---|---|---|---|---|---|---|---|---|"]
  for r in results["models"]:
    pixels, features = r["memorisation"]["pixels"], r["memorisation"].get("features")
    sem = f" ± {r['bits_per_dim_sem']:.3f}" if r["bits_per_dim_sem"] else ""
    latent = (f"{features['nn_median_ratio']:.2f} | {features['near_copy_fraction']:.1%}" if features
              else "— | —")  # no feature space: neither the VAE nor Inception weights
    lines.append(
        f"| {r['model']} | {r['bits_per_dim']:.3f}{sem} | {r['likelihood']} | {r['steps']:,} × "
        f"{r['batch_size']} | {r['train_seconds'] / 60:.1f} min | {pixels['sample_nn_median']:.2f} / "
        f"{pixels['heldout_nn_median']:.2f} | {pixels['near_copy_fraction']:.1%} | {latent} |")
  photos = os.path.join(runs_dir, PAINTINGS_PHOTOS)
  size = manifest["settings"]["image_size"]
  lines.append(
      f"\n{manifest['num_train']:,} training and {manifest['num_test']:,} held-out squares of "
      f"{size}x{size} from {manifest['num_pictures']} photographs; the whole command (preparation, "
      f"the {len(results['models'])} trainings and their evaluations, samples, memorisation checks, "
      "gallery) took "
      f"{results['total_seconds'] / 60:.1f} min: `python -m experiments.photo_folder --output={photos} && "
      f"python -m experiments.paintings --images={photos} --workdir={workdir} {PAINTINGS_FLAGS}`")
  return "\n".join(lines)


def write_paintings_table(runs_dir: str, readme: str, root: str) -> str:
  """The table, the gallery's figures and a headless-Chromium screenshot of its top."""
  text = paintings_table(runs_dir)
  if readme:
    from experiments import paintings_gallery
    copy_named_figures(runs_dir, root, PAINTINGS_FIGURES)
    index = os.path.join(runs_dir, PAINTINGS_RUN, "index.html")
    if os.path.exists(index):
      paintings_gallery.screenshot(index, os.path.join(root, IMAGES_DIR, PAINTINGS_SCREENSHOT))
    rewrite_readme(readme, text, PAINTINGS_START, PAINTINGS_END)
  return text


TABLES = {"autoencoders": write_autoencoder_table, "boltzmann": write_boltzmann_table,
          "diffusion": write_diffusion_table, "flows": write_flows_table,
          "autoregressive": write_autoregressive_table, "ebm": write_ebm_table,
          "gan": write_gan_table, "mixtures": write_mixtures_table, "paintings": write_paintings_table}
_TABLES = flags.DEFINE_list("tables", list(TABLES), f"Which tables to print (and write): {list(TABLES)}.")


def main(argv):
  del argv
  unknown = sorted(set(_TABLES.value) - set(TABLES))
  if unknown:
    raise app.UsageError(f"unknown --tables {unknown}; choose from {list(TABLES)}")
  root = os.path.dirname(os.path.abspath(_README.value)) if _README.value else ""
  for name in _TABLES.value:
    print(TABLES[name](_RUNS_DIR.value, _README.value, root))


if __name__ == "__main__":
  app.run(main)
