"""The diffusion family as a trainer task (score_sde style: process, loss, sampler and network
are separate; the sampler is picked by name from its process's registry).

Processes (`model.process`):
  ddpm     discrete time, T = model.num_timesteps, schedule `model.schedule`, network target
           `model.target` (eps | x0 | v | mean), loss `model.loss_type` (simple | weighted_mse |
           vlb); samplers ddpm | ddim; bound: every term of the variational bound (T network
           calls per example), in bits/dim for images.
  sde      continuous time, `model.sde` (vp | ve), ε-network with input scale 1/√(m² + s²)
           (ε-MSE = denoising score matching with λ(t) = s(t)²); samplers pc | euler_maruyama
           | ode; likelihood: the probability-flow ODE (exact divergence up to
           eval.exact_divergence_max_dims dimensions, else Hutchinson).
  vdm      continuous time with the learned monotone γ_η(t) (fixed end points); sampler
           ancestral; bound: the continuous-time VDM bound in bits/dim.

Class-conditional models (`model.num_classes` > 0) train with label dropout
(`model.label_drop_probability`, label num_classes = ∅) and sample with classifier-free
guidance weight `sample.guidance_weight`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from gen_jax.data import apply_transforms, eval_batches, load_dataset
from gen_jax.diffusion import gaussian, losses, samplers, sde as sde_lib, vdm
from gen_jax.keys import fold_in_indices, split_data_key
from gen_jax.metrics import features as feature_lib
from gen_jax.metrics import protocol
from gen_jax.metrics.likelihood import mean_and_sem, nats_to_bpd
from gen_jax.nets import diffusion as nets
from gen_jax.training import Density, Task, plots, train

# The sub-stream of an example's loss key that an unconditional process draws from (the one
# losses.label_dropout_loss hands a conditional model's process).
DIFFUSION_STREAM = 0
# Sub-streams of an example's sample key.
SAMPLER_STREAM, LABEL_STREAM = 0, 1
TIME_SCALE = 1000.0  # continuous t ∈ [0, 1] is embedded as 1000 t, like the index of T = 1000
NUM_GRID_SAMPLES = 64
FIGURE_POINTS = 2000
DRIFT_GRID = 20  # arrows per side of the drift-field panels
PLOT_LIMIT = 1.1  # 2-D panels span 1.1 × the data's largest |coordinate|
RANGE_TOLERANCE = 1e-5  # float rounding of 2 · (k / 255) − 1
BETA_SCHEDULES = {"linear": gaussian.linear_betas, "cosine": gaussian.cosine_betas}


def _check_choice(field: str, value, choices):
  if value not in choices:
    raise ValueError(f"unknown {field} {value!r}; choose from {sorted(choices)}")


# ---------------------------------------------------------------- processes


class Process:
  """What each process declares it offers (read by the task, the figures and evaluation)."""
  name: str
  has_bound = False         # bound(output_fn, extra, x, key, draws) -> terms with "nelbo"
  has_ode_likelihood = False  # an SDE: `sde` and score_fn() for the probability-flow ODE
  has_trajectory = False    # trajectory() and drift() for the Sohl-Dickstein figure
  learned_schedule = False  # gamma_fn(extra): a learned noise schedule to plot

  def init_extra(self, key) -> dict:
    """Parameters the process adds beside the network's (VDM: the learned γ)."""
    return {}


class DDPMProcess(Process):
  """Discrete-time Gaussian diffusion with T steps (Ho et al. 2020)."""
  name = "ddpm"
  has_bound = True
  has_trajectory = True

  def __init__(self, m, sample_config):
    _check_choice("model.schedule", m.schedule, BETA_SCHEDULES)
    _check_choice("model.target", m.target, gaussian.X0_FROM_TARGET)
    _check_choice("model.loss_type", m.loss_type, losses.LOSS_TYPES)
    _check_choice("model.decoder", m.decoder, losses.DECODERS)
    _check_choice("sample.sampler", sample_config.sampler, self.samplers())
    self.m = m
    self.schedule = gaussian.make_schedule(BETA_SCHEDULES[m.schedule](int(m.num_timesteps)))

  @staticmethod
  def samplers() -> Mapping[str, Callable]:
    return {"ddpm": lambda p, eps_fn, key, shape, s: samplers.sample_ddpm(
                p.schedule, eps_fn, key, shape, p.m.variance),
            "ddim": lambda p, eps_fn, key, shape, s: samplers.sample_ddim(
                p.schedule, eps_fn, key, shape, int(s.num_steps), float(s.eta))}

  def network_time(self, t, extra):
    return t.astype(jnp.float32)

  def eps_model(self, output_fn, extra):
    """ε̂(x_t, t) from a network that predicts model.target."""
    def eps(x_t, t):
      x0 = gaussian.model_x0(self.schedule, self.m.target, x_t, t, output_fn(x_t, t))
      return gaussian.predict_eps_from_x0(self.schedule, x_t, t, x0)
    return eps

  def sampler_settings(self, s, extra):
    return s

  def loss(self, output_fn, extra, x, keys):
    return losses.training_losses(self.schedule, output_fn, x, keys, self.m.target,
                                  self.m.loss_type, self.m.variance, self.m.decoder)

  def density(self, model, ev):
    """(log p estimate per row, its name, whether it is a density of continuous data)."""
    return (bound_log_density(self, model, int(ev.bound_draws)),
            f"the variational bound −L of the {self.schedule.num_steps}-step DDPM (all T terms, "
            "one x_t per index; a lower bound on log p(x))", self.m.decoder != "discretized")

  def bound(self, output_fn, extra, x, key, draws):
    del draws  # the full sum over t: exact given one x_t per index
    return losses.full_bound_terms(self.schedule, output_fn, x, key, self.m.target,
                                   self.m.variance, self.m.decoder)

  def trajectory(self, eps_fn, key, shape, snapshots):
    """{s: x_s} of one ancestral run for s in `snapshots`, s = the number of noising steps
    (T: the x_T draw; s < T: after the reverse step at index s)."""
    keys, x = samplers.initial_noise(key, shape)
    states = {}
    snapshots = set(int(s) for s in snapshots)
    T = self.schedule.num_steps
    if T in snapshots:
      states[T] = x
    step = jax.jit(lambda x, t: gaussian.ddpm_step(
        self.schedule, x, jnp.full(shape[:1], t), eps_fn(x, jnp.full(shape[:1], t)),
        samplers.step_noise(keys, t, shape), self.m.variance))
    for t in range(T - 1, -1, -1):
      x = step(x, t)
      if t in snapshots:
        states[t] = x
    return states

  def drift(self, eps_fn, x, t):
    """μ_θ(x_t, t) − x_t at index t."""
    t = jnp.full(x.shape[:1], t)
    mean = (x - gaussian.at(self.schedule.betas, t, x)
            / gaussian.at(self.schedule.sqrt_one_minus_alphas_cumprod, t, x) * eps_fn(x, t)
            ) / jnp.sqrt(gaussian.at(self.schedule.alphas, t, x))
    return mean - x

  def forward(self, x0, t, noise):
    """x_t = q_sample at index t (t >= 0)."""
    return gaussian.q_sample(self.schedule, x0, jnp.full(x0.shape[:1], t), noise)


class SDEProcess(Process):
  """A score SDE on t ∈ [t_min, 1] (Song et al. 2021) with an ε-network:
  score(x, t) = −ε_θ(c_in x, 1000 t) / s(t), c_in = 1/√(m(t)² + s(t)²)."""
  name = "sde"
  has_ode_likelihood = True

  def __init__(self, m, sample_config):
    _check_choice("model.sde", m.sde, sde_lib.SDES)
    _check_choice("sample.sampler", sample_config.sampler, self.samplers())
    self.m = m
    kwargs = {"vp": {"beta_min": float(m.beta_min), "beta_max": float(m.beta_max)},
              "ve": {"sigma_min": float(m.sigma_min), "sigma_max": float(m.sigma_max)}}[m.sde]
    self.sde = sde_lib.SDES[m.sde](**kwargs)

  @staticmethod
  def samplers() -> Mapping[str, Callable]:
    score = lambda p, eps_fn: p.score_fn(eps_fn)
    return {"pc": lambda p, eps_fn, key, shape, s: sde_lib.pc_sample(
                p.sde, score(p, eps_fn), key, shape, int(s.num_steps), int(s.corrector_steps),
                float(s.snr)),
            "euler_maruyama": lambda p, eps_fn, key, shape, s: sde_lib.pc_sample(
                p.sde, score(p, eps_fn), key, shape, int(s.num_steps), 0),
            "ode": lambda p, eps_fn, key, shape, s: sde_lib.ode_sample(
                p.sde, score(p, eps_fn), key, shape, int(s.num_steps))}

  def input_scale(self, t, x):
    mean, std = self.sde.marginal(t)
    return (1.0 / jnp.sqrt(mean ** 2 + std ** 2)).reshape(t.shape + (1,) * (x.ndim - 1))

  def network_time(self, t, extra):
    return TIME_SCALE * t

  def eps_model(self, output_fn, extra):
    """ε̂(x, t) = network(c_in x, t)."""
    return lambda x, t: output_fn(self.input_scale(t, x) * x, t)

  def sampler_settings(self, s, extra):
    return s

  def density(self, model, ev):
    steps, exact_max = int(ev.ode_steps), int(ev.exact_divergence_max_dims)

    def log_density(params, x, keys):
      exact = math.prod(x.shape[1:]) <= exact_max
      score = self.score_fn(model.eps_fn(params))
      return jax.vmap(lambda x_i, k: sde_lib.ode_log_likelihood(
          self.sde, score, x_i[None], k, steps, exact)[0])(x, keys)

    divergence = (f"exact divergence up to {exact_max} dimensions, else Hutchinson's estimate")
    return log_density, f"the probability-flow ODE ({steps} steps, {divergence})", True

  def score_fn(self, eps_fn):
    def score(x, t):
      std = self.sde.marginal(t)[1].reshape(t.shape + (1,) * (x.ndim - 1))
      return -eps_fn(x, t) / std
    return score

  def loss(self, output_fn, extra, x, keys):
    """sde.eps_matching_loss: ε-MSE at t ~ U(t_min, 1), λ(t) = s(t)² weighted DSM."""
    return sde_lib.eps_matching_loss(self.sde, self.eps_model(output_fn, extra), x, keys)


class VDMProcess(Process):
  """Continuous-time VDM with the learned γ_η(t) (parameters under params["gamma"])."""
  name = "vdm"
  has_bound = True
  learned_schedule = True

  def __init__(self, m, sample_config):
    _check_choice("sample.sampler", sample_config.sampler, self.samplers())
    self.m = m
    self.gamma_net = nets.LearnedGamma(float(m.gamma_min), float(m.gamma_max), int(m.gamma_hidden))

  @staticmethod
  def samplers() -> Mapping[str, Callable]:
    return {"ancestral": lambda p, eps_fn, key, shape, s: vdm.sample(
        s.gamma_fn, eps_fn, key, shape, int(s.num_steps))}

  def init_extra(self, key):
    return {"gamma": self.gamma_net.init(key, jnp.zeros((1,)))}

  def gamma_fn(self, extra):
    return lambda t: self.gamma_net.apply(extra["gamma"], t)

  def network_time(self, g, extra):
    """The network sees γ rescaled to [0, 1000] (VDM's conditioning)."""
    return TIME_SCALE * (g - float(self.m.gamma_min)) / (float(self.m.gamma_max) - float(self.m.gamma_min))

  def eps_model(self, output_fn, extra):
    """ε̂(z, γ): the network's output."""
    return output_fn

  def sampler_settings(self, s, extra):
    """The settings with this model's schedule attached (the ancestral sampler needs γ)."""
    return SampleSettings(s.sampler, int(s.num_steps), float(s.eta), float(s.guidance_weight),
                          int(s.corrector_steps), float(s.snr), self.gamma_fn(extra))

  def loss(self, output_fn, extra, x, keys):
    return vdm.continuous_loss(self.gamma_fn(extra), output_fn, x, keys,
                               bool(self.m.variance_gradient))

  def density(self, model, ev):
    return (bound_log_density(self, model, int(ev.bound_draws)),
            f"the continuous-time VDM bound −L (mean over eval.bound_draws={int(ev.bound_draws)} "
            "draws of (t, ε); a lower bound on log p(x))", False)

  def bound(self, output_fn, extra, x, key, draws):
    """The continuous bound averaged over `draws` independent (t, ε) per example, and the
    spread of the one-draw diffusion estimate (`diffusion_draw_std`) under the learned γ and
    under the linear γ with the same end points (same draws; the bound's mean is the same for
    both, VDM eq. 18, the spread is what training γ reduces)."""
    keys = fold_in_indices(key, jnp.arange(draws))
    gamma_min, gamma_max = float(self.m.gamma_min), float(self.m.gamma_max)
    linear = lambda t: gamma_min + (gamma_max - gamma_min) * t

    def one(k):
      _, learned = vdm.continuous_loss(self.gamma_fn(extra), output_fn, x, k, False)
      _, straight = vdm.continuous_loss(linear, output_fn, x, k, False)
      return learned, straight["diffusion"]

    terms, straight = jax.lax.map(one, keys)
    out = {name: jnp.mean(terms[name], axis=0) for name in ("prior_kl", "recon_nll", "diffusion",
                                                             "nelbo")}
    out["diffusion_draw_std"] = jnp.std(terms["diffusion"], axis=0, ddof=1)
    out["diffusion_linear_gamma"] = jnp.mean(straight, axis=0)
    out["diffusion_linear_gamma_draw_std"] = jnp.std(straight, axis=0, ddof=1)
    return out


PROCESSES = {"ddpm": DDPMProcess, "sde": SDEProcess, "vdm": VDMProcess}


def bound_log_density(process, model, draws: int):
  """−nelbo per row, each row with its own key (a process with a `bound`)."""
  def log_density(params, x, keys):
    return jax.vmap(lambda x_i, k: -process.bound(model.output_fn(params), params, x_i[None], k,
                                                  draws)["nelbo"][0])(x, keys)
  return log_density


# ---------------------------------------------------------------- networks


def _unet(m, element_shape):
  return nets.UNet(channels=int(m.channels), channel_mults=tuple(m.channel_mults),
                   num_res_blocks=int(m.num_res_blocks),
                   attention_resolutions=tuple(m.attention_resolutions),
                   num_classes=int(m.num_classes), num_heads=int(m.num_heads))


def _mlp(m, element_shape):
  return nets.MLPDenoiser(hidden=int(m.mlp_hidden), num_layers=int(m.mlp_layers),
                          num_classes=int(m.num_classes))


NETWORKS = {"unet": _unet, "mlp": _mlp}
NETWORK_RANKS = {"unet": 3, "mlp": 1}  # data dimensions each network takes (after batch)


# ---------------------------------------------------------------- the task


@dataclasses.dataclass
class DiffusionModel:
  """The pieces a task, a sweep or a benchmark needs: process, network and sampling."""
  process: object
  net: object
  config: object
  element_shape: tuple

  @property
  def conditional(self) -> bool:
    return int(self.config.model.num_classes) > 0

  def output_fn(self, params, labels=None):
    """(x, process time) -> raw network output."""
    return lambda x, t: self.net.apply(params["net"], x, self.process.network_time(t, params), labels)

  def eps_fn(self, params, labels=None, guidance_weight: float = 0.0):
    """(x, t) -> ε̂, guided when the model is conditional (labels given, weight w)."""
    base = lambda x, t, y: self.process.eps_model(self.output_fn(params, y), params)(x, t)
    if not self.conditional:
      return lambda x, t: base(x, t, None)
    null = int(self.config.model.num_classes)
    return samplers.guided_eps_fn(base, labels, null, guidance_weight)

  def sample(self, params, keys, sample_config=None, labels=None):
    """One sample per key, in model space; labels (conditional models) from each key unless
    given."""
    s = sample_config or self.config.sample
    if self.conditional and labels is None:
      labels = jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, LABEL_STREAM), (), 0,
                                                     int(self.config.model.num_classes)))(keys)
    eps_fn = self.eps_fn(params, labels, float(s.guidance_weight))
    sampler_keys = jax.vmap(lambda k: jax.random.fold_in(k, SAMPLER_STREAM))(keys)
    shape = (keys.shape[0], *self.element_shape)
    s = self.process.sampler_settings(s, params)
    return self.process.samplers()[s.sampler](self.process, eps_fn, sampler_keys, shape, s)


@dataclasses.dataclass(frozen=True)
class SampleSettings:
  """A sampler's settings (the `sample` config section, as a hashable value)."""
  sampler: str
  num_steps: int
  eta: float = 0.0
  guidance_weight: float = 0.0
  corrector_steps: int = 1
  snr: float = 0.16
  gamma_fn: Callable | None = None


def build_model(config, dataset) -> DiffusionModel:
  m = config.model
  _check_choice("model.process", m.process, PROCESSES)
  _check_choice("model.network", m.network, NETWORKS)
  element_shape = tuple(dataset.element_shape)
  if len(element_shape) != NETWORK_RANKS[m.network]:
    raise ValueError(f"model.network={m.network!r} takes data of rank {NETWORK_RANKS[m.network]} "
                     f"but {config.data.name!r} has elements of shape {element_shape}: use "
                     f"{'unet' if len(element_shape) == 3 else 'mlp'}")
  if int(m.num_classes) and dataset.num_classes and int(m.num_classes) != dataset.num_classes:
    raise ValueError(f"model.num_classes={int(m.num_classes)} but {config.data.name!r} has "
                     f"{dataset.num_classes} classes")
  if m.process == "vdm" and tuple(config.data.transforms)[-1:] != ("scale_to_symmetric",):
    raise ValueError("model.process='vdm' models 8-bit pixels in [-1, 1]: set "
                     "data.transforms=('scale_to_symmetric',)")
  process = PROCESSES[m.process](m, config.sample)
  return DiffusionModel(process, NETWORKS[m.network](m, element_shape), config, element_shape)


def _to_display(kind):
  """Model space -> what people see: images [-1, 1] -> [0, 1]; points unchanged."""
  return (lambda x: (x + 1.0) / 2.0) if kind == "image" else (lambda x: x)


def make_task(config, dataset) -> Task:
  model = build_model(config, dataset)
  m, ev = config.model, config.eval
  process = model.process
  transforms = tuple(config.data.transforms)
  num_classes = int(m.num_classes)
  is_image = dataset.kind == "image"
  num_dims = math.prod(model.element_shape)
  test_key = split_data_key(config.seed, "test")

  @jax.jit  # one compiled program: eager init compiles every initializer shape on its own
  def init(key, x):
    labels = jnp.zeros(x.shape[:1], jnp.int32) if num_classes else None
    params = {"net": model.net.init(key, x, jnp.zeros(x.shape[:1]), labels)}
    params.update(process.init_extra(jax.random.fold_in(key, 1)))
    return params

  def loss_fn(params, batch, key):
    """The process's loss; conditional models train with label dropout (losses.label_dropout_loss)."""
    x = batch["x"]
    keys = fold_in_indices(key, batch["index"])

    def process_loss(labels, loss_keys):
      return process.loss(model.output_fn(params, labels), params, x, loss_keys)

    if num_classes:
      loss, terms = losses.label_dropout_loss(process_loss, batch["label"].astype(jnp.int32), keys,
                                              float(m.label_drop_probability), num_classes)
    else:
      loss, terms = process_loss(None, jax.vmap(lambda k: jax.random.fold_in(k, DIFFUSION_STREAM))(keys))
    terms = {name: jnp.mean(value) for name, value in terms.items()}
    if is_image and "nelbo" in terms:
      terms["nelbo_bpd"] = nats_to_bpd(terms["nelbo"], num_dims)
    return jnp.mean(loss), terms

  def check_data(x):
    outside = max(float(np.max(np.abs(x))) - 1.0, 0.0) > RANGE_TOLERANCE
    if is_image and (outside or x.min() >= 0):
      raise ValueError(f"diffusion models images in [-1, 1], but after data.transforms="
                       f"{list(transforms)} values span [{x.min():.3g}, {x.max():.3g}]: end "
                       "data.transforms with 'scale_to_symmetric'")

  @jax.jit
  def eval_transform(batch, key):
    return apply_transforms(transforms, batch, key, training=False)

  @jax.jit
  def bound_batch(params, x, labels, key):
    return process.bound(model.output_fn(params, labels), params, x, key, int(ev.bound_draws))

  @jax.jit
  def ode_nll_batch(params, x, key):
    score = process.score_fn(model.eps_fn(params))
    exact = num_dims <= int(ev.exact_divergence_max_dims)
    return -sde_lib.ode_log_likelihood(process.sde, score, x, key, int(ev.ode_steps), exact)

  def _test_batches(limit):
    for batch in eval_batches(dataset.test, int(ev.batch_size), limit or None):
      mask = batch.pop("mask")
      yield mask, eval_transform(batch, test_key), batch

  def _summarize(values, prefix=""):
    out = {}
    for name, v in values.items():
      out[prefix + name], out[prefix + name + "_sem"] = mean_and_sem(np.concatenate(v))
    return out

  def evaluate(params, dataset, key, final):
    metrics = {}
    if process.has_bound:
      values, count = {}, 0
      limit = int(ev.bound_examples)
      batches = list(_test_batches(limit))
      for mask, x, batch in tqdm(batches, desc="bound", unit="batch", disable=not final):
        labels = jnp.asarray(batch["label"], jnp.int32) if num_classes else None
        terms = bound_batch(params, x, labels, jax.random.fold_in(key, count))
        if dataset.log_prob is not None:
          terms["data_nll"] = -dataset.log_prob(x)
        for name, value in terms.items():
          values.setdefault(name, []).append(np.asarray(value)[mask])
        count += int(mask.sum())
      metrics.update(_summarize(values))
      if is_image:
        metrics.update({(f"{k[:-4]}_bpd_sem" if k.endswith("_sem") else f"{k}_bpd"):
                        nats_to_bpd(v, num_dims) for k, v in list(metrics.items())})
      metrics["bound_examples"] = count
    if process.has_ode_likelihood and final:  # score SDEs: the probability-flow ODE likelihood
      values, count = {"nll": []}, 0
      for mask, x, batch in tqdm(list(_test_batches(int(ev.likelihood_examples))), desc="ode nll",
                                 unit="batch"):
        values["nll"].append(np.asarray(ode_nll_batch(params, x, jax.random.fold_in(key, count)))[mask])
        if dataset.log_prob is not None:
          values.setdefault("data_nll", []).append(-np.asarray(dataset.log_prob(x))[mask])
        count += int(mask.sum())
      metrics.update(_summarize(values, "ode_"))
      metrics["ode_examples"] = count
      if is_image:
        metrics["ode_nll_bpd"] = nats_to_bpd(metrics["ode_nll"], num_dims)
    if final and is_image and int(ev.num_fid_samples) and dataset.name in feature_lib.DEFAULT_FEATURE_NET:
      metrics.update(sample_quality(model, params, dataset, config, jax.random.fold_in(key, 1),
                                    int(ev.num_fid_samples)))
    return metrics

  def write_figures(params, dataset, prefix, key, final):
    if is_image:
      return _image_figures(model, params, prefix, key, final, dataset)
    return _point_figures(model, params, prefix, key, final, dataset, config)

  density = None
  if not num_classes:  # a class-conditional model's bound is of p(x | y)
    fn, method, continuous = process.density(model, ev)
    density = (Density.for_images(fn, method, "symmetric", continuous) if is_image
               else Density(fn, method))

  return Task(name=f"diffusion/{m.process}", init=init, loss_fn=loss_fn, check_data=check_data,
              write_figures=write_figures, evaluate=evaluate, density=density,
              sample=lambda params, keys: _to_display(dataset.kind)(model.sample(params, keys)),
              to_display=_to_display(dataset.kind))


def sample_quality(model: DiffusionModel, params, dataset, config, key, num_samples: int,
                   sample_config=None) -> dict:
  """FID / KID / IS / precision / recall of `num_samples` samples (sample_config, default the
  run's) in the dataset's default feature space, against the training split."""
  net = feature_lib.feature_net(feature_lib.default_feature_net(dataset.name))
  display = _to_display(dataset.kind)
  return protocol.sample_quality(
      lambda keys: display(model.sample(params, keys, sample_config)), dataset,
      tuple(config.data.transforms), net, key, display, num_samples=num_samples,
      data_seed=int(config.seed), batch_size=int(config.eval.sample_batch_size),
      data_dir=config.data.data_dir)


def save_class_grid(model, params, key, per_class: int, path: str, sample_config=None):
  """A PNG with one row per class, `per_class` samples each (sample i from fold_in(key, i))."""
  labels = jnp.repeat(jnp.arange(int(model.config.model.num_classes)), per_class)
  keys = fold_in_indices(key, jnp.arange(labels.shape[0]))
  images = jax.jit(lambda k, y: model.sample(params, k, sample_config, y))(keys, labels)
  return plots.save_image_grid(np.asarray(_to_display("image")(images)), path, per_class)


def _image_figures(model, params, prefix, key, final, dataset):
  paths = []
  if model.conditional:
    per_class = max(1, NUM_GRID_SAMPLES // int(model.config.model.num_classes))
    paths.append(save_class_grid(model, params, key, per_class, f"{prefix}_samples_by_class.png"))
  else:
    keys = fold_in_indices(key, jnp.arange(NUM_GRID_SAMPLES))
    images = jax.jit(lambda k: model.sample(params, k))(keys)
    paths.append(plots.save_image_grid(np.asarray(_to_display("image")(images)),
                                       f"{prefix}_samples.png", 8))
  if final and model.process.learned_schedule:
    paths.append(_gamma_figure(model.process.gamma_fn(params), f"{prefix}_gamma.png"))
  return paths


def _gamma_figure(gamma_fn, path):
  """The learned γ(t) and log-SNR −γ(t) on [0, 1]."""
  t = np.linspace(0.0, 1.0, 201, dtype=np.float32)
  gamma = np.asarray(jax.jit(gamma_fn)(jnp.asarray(t)))
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot(t, gamma, label="learned γ(t)")
  ax.plot(t, gamma[0] + (gamma[-1] - gamma[0]) * t, "--", label="linear, same end points")
  ax.set_xlabel("t")
  ax.set_ylabel("γ = −log SNR")
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def _point_figures(model, params, prefix, key, final, dataset, config):
  keys = fold_in_indices(key, jnp.arange(FIGURE_POINTS))
  samples = np.asarray(jax.jit(lambda k: model.sample(params, k))(keys))
  data = np.asarray(dataset.test.gather(np.arange(min(FIGURE_POINTS, len(dataset.test))))["x"])
  limit = PLOT_LIMIT * float(np.abs(data).max())
  paths = [plots.save_scatter(samples, f"{prefix}_samples.png",
                              title=f"{config.sample.sampler} samples ({dataset.name})",
                              limits=(-limit, limit))]
  if final and model.process.has_trajectory:
    paths.append(trajectory_figure(model, params, key, data, f"{prefix}_trajectories.png", limit))
  return paths


def trajectory_figure(model, params, key, data, path, limit):
  """Sohl-Dickstein et al. (2015) Figure 1 after s = 0, T/2 and T noising steps: forward
  slices q(x_s) (top), reverse slices p_θ(x_s) of ancestral runs (middle), and the drift
  μ_θ(x_s) − x_s of the reverse step out of x_s (bottom, reverse samples in red)."""
  process = model.process
  T = process.schedule.num_steps
  shown = (0, T // 2, T)
  eps_fn = model.eps_fn(params)
  noise = jax.random.normal(jax.random.fold_in(key, 1), data.shape)
  forward = {s: data if s == 0 else np.asarray(process.forward(jnp.asarray(data), s - 1, noise))
             for s in shown}
  keys = fold_in_indices(jax.random.fold_in(key, 2), jnp.arange(data.shape[0]))
  reverse = {s: np.asarray(x) for s, x in process.trajectory(eps_fn, keys, data.shape, shown).items()}
  axis = np.linspace(-limit, limit, DRIFT_GRID, dtype=np.float32)
  grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
  drift_fn = jax.jit(lambda x, t: process.drift(eps_fn, x, t))
  plt = plots.pyplot()
  fig, axes = plt.subplots(3, 3, figsize=(10, 10))
  for col, s in enumerate(shown):
    label = {0: "s = 0", T // 2: "s = T/2", T: "s = T"}[s]
    for row, (name, pts) in enumerate((("q (forward)", forward[s]), ("p_θ (reverse)", reverse[s]))):
      axes[row, col].scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.5)
      axes[row, col].set_title(f"{name}, {label}", fontsize=9)
    drift = np.asarray(drift_fn(jnp.asarray(grid), max(s - 1, 0)))
    ax = axes[2, col]
    ax.quiver(grid[:, 0], grid[:, 1], drift[:, 0], drift[:, 1], angles="xy")
    ax.scatter(reverse[s][:, 0], reverse[s][:, 1], s=1, alpha=0.2, color="tab:red")
    ax.set_title(f"drift μ_θ(x_s) − x_s, {label}", fontsize=9)
  for ax in axes.flat:
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def train_and_evaluate(config, workdir: str, stop_after_step: int | None = None):
  """Trains the configured diffusion model in `workdir` (resuming if it holds a checkpoint),
  writes figures and eval.json, and returns the TrainResult."""
  dataset = load_dataset(config.data)
  task = make_task(config, dataset)
  return train(task, config, workdir, dataset, stop_after_step)
