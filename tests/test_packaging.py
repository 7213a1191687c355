"""The wheel: every subpackage of gen_jax and experiments, the configs and the shipped
classifier weights are inside it (a `find:` that skipped a folder without __init__.py once
left gen_jax.boltzmann out, and every Boltzmann launcher failed from a wheel)."""

import pathlib
import subprocess
import sys
import zipfile

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_wheel_holds_every_module_and_the_shipped_weights(tmp_path):
  subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                  "--quiet", "-w", str(tmp_path), str(REPO)], check=True, cwd=tmp_path,
                 capture_output=True, timeout=300)
  (wheel,) = tmp_path.glob("gen_jax-*.whl")
  names = set(zipfile.ZipFile(wheel).namelist())
  sources = [p.relative_to(REPO).as_posix() for top in ("gen_jax", "experiments")
             for p in (REPO / top).rglob("*.py")]
  assert sources and not sorted(set(sources) - names)
  packages = {str(pathlib.PurePosixPath(s).parent) for s in sources}
  assert {f"{p}/__init__.py" for p in packages} <= names
  weights = [p.relative_to(REPO).as_posix() for p in (REPO / "gen_jax/metrics/weights").glob("*.npz")]
  assert weights and set(weights) <= names
