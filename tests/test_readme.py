"""README's "Adding a family" block runs as printed, in under 60 lines, and its family learns."""

import pathlib
import re

from gen_jax.training.writers import read_metrics

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def family_block() -> str:
  section = README.read_text().split("### Adding a family", 1)[1]
  return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_adding_a_family_block_runs_and_learns(tmp_path, data_dir, capsys):
  code = family_block()
  assert len(code.splitlines()) < 60
  assert code.count('"/tmp/diagonal_gaussian"') == 1
  namespace = {}
  exec(compile(code.replace('"/tmp/diagonal_gaussian"', repr(str(tmp_path))), "README", "exec"),
       namespace)
  nll = [r["nll"] for r in read_metrics(tmp_path) if "nll" in r]
  assert len(nll) == 4 and nll[-1] < nll[0] - 0.1, nll
  # The maximum-likelihood scale is the data's (checkerboard: std ≈ 2.3, log ≈ 0.83): the fit
  # has moved from log σ = 0 toward it.
  log_std = namespace["result"].state["params"]["log_std"]
  assert (log_std > 0.3).all() and (log_std < 0.9).all(), log_std
  assert float(capsys.readouterr().out.split()[-1]) == namespace["result"].last_terms["nll"]
