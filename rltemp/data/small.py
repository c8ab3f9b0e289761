"""Small built-in datasets that need no download: ``mnist1d`` (generated) and ``digits`` (bundled).

- ``mnist1d``: Greydanus 2020, "Scaling down deep learning" — 1-D signals of length 40 made from
  ten digit templates by padding, shear, translation and correlated noise. Generated locally with
  the ``mnist1d`` package's ``make_dataset`` (never its download URL) and cached as ``.npz``.
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images), scaled to [0, 1].
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from rltemp.config import DataConfig
from rltemp.data.base import DATASETS, DataBundle, Split, cached_arrays, carve_val, check_options

log = logging.getLogger(__name__)

MNIST1D_DEFAULTS = {"num_samples": 5000, "train_split": 0.8, "seed": 42}


def _make_mnist1d(opts: dict) -> dict[str, np.ndarray]:
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = int(opts["num_samples"])
    args.train_split = float(opts["train_split"])
    args.seed = int(opts["seed"])
    state = np.random.get_state()  # make_dataset seeds numpy's global RNG; leave it as we found it
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    return {
        "x": d["x"].astype(np.float32), "y": d["y"].astype(np.int64),
        "x_test": d["x_test"].astype(np.float32), "y_test": d["y_test"].astype(np.int64),
    }


def _check_mnist1d(a: dict[str, np.ndarray]) -> None:
    for x, y in ((a["x"], a["y"]), (a["x_test"], a["y_test"])):
        if len(x) != len(y) or len(y) == 0 or int(y.min()) < 0 or int(y.max()) >= 10:
            raise ValueError("arrays do not match mnist1d's 10 classes")


@DATASETS.register("mnist1d")
def mnist1d(cfg: DataConfig) -> DataBundle:
    opts = check_options("mnist1d", cfg.options, MNIST1D_DEFAULTS)
    a = cached_arrays("mnist1d", opts, _make_mnist1d, _check_mnist1d)
    train, val = carve_val(a["x"], a["y"], cfg.val_fraction, cfg.split_seed)
    test = Split(torch.from_numpy(a["x_test"]), torch.from_numpy(a["y_test"]))
    return DataBundle("mnist1d", train, val, test, 10, (a["x"].shape[1],))


DIGITS_DEFAULTS = {"test_fraction": 0.2, "test_seed": 0}


@DATASETS.register("digits")
def digits(cfg: DataConfig) -> DataBundle:
    from sklearn.datasets import load_digits

    opts = check_options("digits", cfg.options, DIGITS_DEFAULTS)
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    y = d.target.astype(np.int64)
    rng = np.random.default_rng(opts["test_seed"])
    perm = rng.permutation(len(y))
    n_test = int(round(opts["test_fraction"] * len(y)))
    te, tr = perm[:n_test], perm[n_test:]
    train, val = carve_val(x[tr], y[tr], cfg.val_fraction, cfg.split_seed)
    test = Split(torch.from_numpy(x[te]), torch.from_numpy(y[te]))
    return DataBundle("digits", train, val, test, 10, (1, 8, 8))
