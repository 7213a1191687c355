"""Data: TFDS builders, 2-D densities, transforms and the deterministic pipeline."""

from gen_jax.data.pipeline import BatchSampler, eval_batches, evaluation_split
from gen_jax.data.sources import Dataset, load_dataset
from gen_jax.data.transforms import apply_transforms

__all__ = ["BatchSampler", "Dataset", "apply_transforms", "eval_batches", "evaluation_split",
           "load_dataset"]
