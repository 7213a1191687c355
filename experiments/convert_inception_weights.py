r"""Converts the FID Inception-v3 weights of pytorch-fid into the .npz that gen_jax loads.

On a machine with internet, download pt_inception-2015-12-05-6726825d.pth (the pytorch-fid
release asset), then, with PyTorch installed (`pip install torch`, needed for this step only):

  python -m experiments.convert_inception_weights \
      --torch_weights=pt_inception-2015-12-05-6726825d.pth --output=inception_fid.npz
  export GEN_JAX_INCEPTION_WEIGHTS=$PWD/inception_fid.npz

A state dict already saved as .npz (one array per tensor name) is accepted without PyTorch.
The mapping (conv OIHW -> HWIO, batch-norm running statistics -> batch_stats, fc transposed)
is `gen_jax.metrics.features.inception_variables_from_torch`.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from gen_jax.metrics.features import convert_inception_weights

_TORCH_WEIGHTS = flags.DEFINE_string("torch_weights", None, "pytorch-fid .pth (or .npz state dict).",
                                     required=True)
_OUTPUT = flags.DEFINE_string("output", "inception_fid.npz", "Where to write the gen_jax .npz.")


def load_state_dict(path: str) -> dict:
  if path.endswith(".npz"):
    with np.load(path) as data:
      return {k: data[k] for k in data.files}
  try:
    import torch
  except ImportError:
    raise SystemExit("reading a .pth needs PyTorch: pip install torch (only for this conversion)") from None
  state = torch.load(path, map_location="cpu")
  return {k: v.numpy() for k, v in state.items()}


def main(argv):
  del argv
  path = convert_inception_weights(load_state_dict(_TORCH_WEIGHTS.value), _OUTPUT.value)
  print(f"wrote {path}; set GEN_JAX_INCEPTION_WEIGHTS={path}")


if __name__ == "__main__":
  app.run(main)
