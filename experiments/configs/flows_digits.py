"""A multi-scale Glow on dequantized scikit-learn digits (8x8 grey images, 17 levels stored
as 8-bit values k·255/16), trained by maximum likelihood; test bound in bits/dim.

2 levels (8 -> 4 -> 2 px) of 6 steps with 64-channel coupling networks, uniform dequantization,
global batch 128, 1,500 steps (128 epochs: longer runs overfit the 1,500 training images, see
README's flow results; the rest as flows_mnist5k.py). Expected result: README's flow
table (`python -m experiments.flows --workdir=DIR --config=experiments/configs/flows_digits.py`).
Variants: `:variational`, `:smoke`.
"""

from __future__ import annotations

from experiments.configs import common, flows_mnist5k


def get_config(arg: str = ""):
  c = flows_mnist5k.image_config()
  c.data.name = "digits"
  c.model.steps = 6
  c.train.batch_size = 128
  c.train.num_steps = 1_500
  c.train.checkpoint_every = 500
  c.train.sample_every = 500
  return common.apply_variants(c, arg, {"variational": flows_mnist5k.variational,
                                        "smoke": flows_mnist5k.smoke})
