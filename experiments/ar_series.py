r"""AR(p) on a real series that ships inside statsmodels, beside statsmodels' `AutoReg`.

  python -m experiments.ar_series --series=sunspots --output_dir=/tmp/ar_sunspots

Selects the order by AIC or BIC over 0..max_order (every order fitted to the same residual
times), fits it by conditional maximum likelihood (`gen_jax.autoregressive.fit_ar`, float64),
and compares the order, coefficients, σ² and log-likelihood with statsmodels' `ar_select_order`
and `AutoReg` on the same series. Then refits without the last `horizon` values and forecasts
them with 95 % prediction intervals (RMSE and interval coverage). Writes `results.json` and
`forecast.png` in --output_dir. statsmodels is a peer: `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
from absl import app, flags
from scipy.stats import norm

from gen_jax import autoregressive as ar
from gen_jax.training import plots

SERIES = {
    # name: (statsmodels dataset module, column, what it is)
    "sunspots": ("sunspots", "SUNACTIVITY", "yearly sunspot numbers, 1700-2008"),
    "nile": ("nile", "volume", "yearly flow of the Nile at Aswan, 1871-1970"),
}
INTERVAL = 0.95

_SERIES = flags.DEFINE_enum("series", "sunspots", list(SERIES), "Series to fit.")
_MAX_ORDER = flags.DEFINE_integer("max_order", 12, "Largest order considered.")
_CRITERION = flags.DEFINE_enum("criterion", "aic", sorted(ar.ar_process.INFORMATION_CRITERIA),
                               "Order-selection criterion.")
_HORIZON = flags.DEFINE_integer("horizon", 20, "Held-out values forecast at the end.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "/tmp/ar_series", "Where results go.")


def load_series(name: str) -> np.ndarray:
  try:
    from statsmodels import datasets
  except ImportError as e:
    raise SystemExit(f"error: statsmodels is needed for its series and as the peer ({e}): "
                     "pip install -e \".[bench]\"")
  module, column, _ = SERIES[name]
  return np.asarray(getattr(datasets, module).load_pandas().data[column], np.float64)


def statsmodels_fit(y, max_order, criterion, order):
  from statsmodels.tsa.ar_model import AutoReg, ar_select_order
  selected = ar_select_order(y, max_order, ic=criterion, trend="c")
  lags = selected.ar_lags or []
  fit = AutoReg(y, lags=order, trend="c").fit()
  return {"order": int(max(lags) if lags else 0), "mu": float(fit.params[0]),
          "phi": [float(v) for v in fit.params[1:]], "sigma2": float(fit.sigma2),
          "log_likelihood": float(fit.llf)}


def main(argv):
  del argv
  y = load_series(_SERIES.value)
  h = _HORIZON.value
  with jax.enable_x64(True):
    order, criteria = ar.select_order(y, _MAX_ORDER.value, _CRITERION.value)
    fit = ar.fit_ar(y, order)
    log_lik = float(ar.ar_log_prob(fit.mu, fit.phi, fit.sigma2, y))
    held_out_fit = ar.fit_ar(y[:-h], order)
    pred = ar.forecast(*held_out_fit, y[:-h], h)
  mean, std = np.asarray(pred.mean), np.asarray(pred.std)
  z = norm.ppf(0.5 + INTERVAL / 2)
  peer = statsmodels_fit(y, _MAX_ORDER.value, _CRITERION.value, order)
  results = {
      "series": _SERIES.value, "length": int(len(y)), "criterion": _CRITERION.value,
      "gen_jax": {"order": order, "mu": float(fit.mu), "phi": [float(v) for v in fit.phi],
                  "sigma2": float(fit.sigma2), "log_likelihood": log_lik,
                  "criteria": [float(v) for v in criteria]},
      "statsmodels": peer,
      "max_abs_coefficient_difference": float(np.max(np.abs(
          np.r_[float(fit.mu), np.asarray(fit.phi)] - np.r_[peer["mu"], peer["phi"]]))),
      "forecast": {"horizon": h, "rmse": float(np.sqrt(np.mean((mean - y[-h:]) ** 2))),
                   f"coverage_{int(100 * INTERVAL)}": float(np.mean(np.abs(y[-h:] - mean) <= z * std)),
                   "naive_last_value_rmse": float(np.sqrt(np.mean((y[-h - 1] - y[-h:]) ** 2)))},
  }
  os.makedirs(_OUTPUT_DIR.value, exist_ok=True)
  with open(os.path.join(_OUTPUT_DIR.value, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  plt = plots.pyplot()
  fig, ax = plt.subplots(figsize=(9, 3.5))
  t = np.arange(len(y))
  ax.plot(t, y, lw=1, color="k", label=SERIES[_SERIES.value][2])
  ax.plot(t[-h:], mean, color="C1", label=f"AR({order}) forecast from t = {len(y) - h}")
  ax.fill_between(t[-h:], mean - z * std, mean + z * std, color="C1", alpha=0.3,
                  label=f"{int(100 * INTERVAL)} % prediction interval")
  ax.legend(fontsize=8, loc="upper left")
  fig.tight_layout()
  fig.savefig(os.path.join(_OUTPUT_DIR.value, "forecast.png"), dpi=90)
  plt.close(fig)
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  app.run(main)
