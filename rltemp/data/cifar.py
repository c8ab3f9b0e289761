"""CIFAR-10 / CIFAR-100 from a local ``data_root`` in the standard "python version" layout.

Expected files (as unpacked from the official ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``):

    <root>/cifar-10-batches-py/data_batch_1 ... data_batch_5, test_batch
    <root>/cifar-100-python/train, test

These files are Python pickles. They are read with a *restricted* unpickler that only admits the
numpy array reconstruction globals the format needs, so a tampered file cannot run code
(torchvision's ``CIFAR10`` class calls ``pickle.load`` without such a guard, which is why this
module reads the format itself). Nothing is ever downloaded.

Training augmentation is the standard one of the KD literature (He et al. 2016; Tian et al. 2020):
random crop 32x32 from the image zero-padded by 4, and a random horizontal flip, followed by
per-channel normalisation. It is applied to whole uint8 batches on the batch's device, so the
images can live on the GPU and no data-loader workers are needed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from rltemp.config import DataConfig
from rltemp.data.base import DATASETS, DataBundle, Split, carve_val, check_options
from rltemp.errors import RltempError

# Per-channel mean / std of the training images, as used by RepDistiller / mdistiller.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from a data file")


def _read_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        try:
            d = _SafeUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise RltempError(f"{path}: not a CIFAR batch file ({e})") from None
    if not isinstance(d, dict) or "data" not in d:
        raise RltempError(f"{path}: not a CIFAR batch file (no 'data' entry)")
    return d


LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}


def read_cifar(root: str | Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return uint8 images (N, 3, 32, 32) and int64 labels for train and test."""
    folder, train_files, test_files, label_key, _ = LAYOUT[name]
    base = Path(root).expanduser() / folder
    missing = [f for f in train_files + test_files if not (base / f).is_file()]
    if missing:
        raise RltempError(
            f"{name}: expected {', '.join(train_files + test_files)} in {base} "
            f"(unpack the official {folder} archive under data.root={root}); missing: {', '.join(missing)}"
        )

    def load(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for f in files:
            d = _read_batch(base / f)
            xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.append(np.asarray(d[label_key], dtype=np.int64))
        return np.concatenate(xs), np.concatenate(ys)

    return (*load(train_files), *load(test_files))


def cifar_preprocess(mean: tuple[float, ...], std: tuple[float, ...], crop: bool, flip: bool):
    """Batched normalisation and (for training) random crop with padding 4 and horizontal flip."""
    mean_t = torch.tensor(mean).view(1, 3, 1, 1) * 255.0
    std_t = torch.tensor(std).view(1, 3, 1, 1) * 255.0

    def preprocess(x: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
        if train and (crop or flip):
            b, _, h, w = x.shape
            if crop:
                pad = 4
                xp = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # zero (black) padding
                off = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(x.device)
                rows = (off[0][:, None] + torch.arange(h, device=x.device))[:, None, :, None]
                cols = (off[1][:, None] + torch.arange(w, device=x.device))[:, None, None, :]
                bi = torch.arange(b, device=x.device)[:, None, None, None]
                ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
                x = xp[bi, ci, rows, cols]
            if flip:
                mask = (torch.rand(b, generator=generator) < 0.5).to(x.device)
                x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return (x.float() - mean_t.to(x.device)) / std_t.to(x.device)

    return preprocess


CIFAR_DEFAULTS = {"augment": True}


def _cifar(cfg: DataConfig, name: str) -> DataBundle:
    opts = check_options(name, cfg.options, CIFAR_DEFAULTS)
    if cfg.root is None:
        raise RltempError(f"{name}: set data.root to the folder that holds {LAYOUT[name][0]}/")
    xtr, ytr, xte, yte = read_cifar(cfg.root, name)
    train, val = carve_val(xtr, ytr, cfg.val_fraction, cfg.split_seed)
    test = Split(torch.from_numpy(xte), torch.from_numpy(yte))
    mean, std = (CIFAR10_MEAN, CIFAR10_STD) if name == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
    aug = bool(opts["augment"])
    return DataBundle(
        name, train, val, test, LAYOUT[name][4], (3, 32, 32),
        preprocess=cifar_preprocess(mean, std, crop=aug, flip=aug), augmented=aug,
    )


@DATASETS.register("cifar10")
def cifar10(cfg: DataConfig) -> DataBundle:
    return _cifar(cfg, "cifar10")


@DATASETS.register("cifar100")
def cifar100(cfg: DataConfig) -> DataBundle:
    return _cifar(cfg, "cifar100")
