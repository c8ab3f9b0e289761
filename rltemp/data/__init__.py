"""Datasets by name -> train / val / test splits of ``(x, y, index)``; val is carved from train."""

from rltemp.data import cifar, fashion, glyphs, own, small, text  # noqa: F401  (register the datasets)
from rltemp.data.base import DATASETS, DataBundle, Split, load_dataset

__all__ = ["DATASETS", "DataBundle", "Split", "load_dataset"]
