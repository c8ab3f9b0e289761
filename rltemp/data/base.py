"""Dataset containers: in-memory tensor splits yielding ``(x, y, index)`` batches.

Every built-in dataset is small enough to live in memory (CIFAR's 60k uint8 images are 180 MB),
so batches are sliced from tensors instead of going through a ``DataLoader``: no worker processes,
no per-sample Python, and the whole split can sit on the GPU. Augmentation, where a dataset has it,
is a batched tensor op applied to the training batch (see :mod:`rltemp.data.cifar`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from rltemp.config import DataConfig
from rltemp.registry import Registry

# (x, train, generator) -> model-ready float tensor
Preprocess = Callable[[torch.Tensor, bool, "torch.Generator | None"], torch.Tensor]


@dataclass
class Split:
    """One split: inputs ``x`` (N, ...), labels ``y`` (N,), and ``index`` (N,) into the split."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} rows but y has {len(self.y)}")
        self.index = torch.arange(len(self.y))

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y, index)``; the permutation comes from ``generator`` (seeded by the caller)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        order = order.to(self.x.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            idx = order[start : start + batch_size]
            yield self.x[idx], self.y[idx], idx


def identity_preprocess(x: torch.Tensor, train: bool, generator: torch.Generator | None) -> torch.Tensor:
    return x


@dataclass
class DataBundle:
    """Train / val / test splits of one dataset. Val is carved from train and is the only split
    used for any selection; test is only read for the reported number."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    preprocess: Preprocess = identity_preprocess
    augmented: bool = False  # True when preprocess(train=True) is random (no teacher-logit cache)
    class_names: list[str] | None = None

    def to(self, device: torch.device) -> DataBundle:
        return DataBundle(
            self.name, self.train.to(device), self.val.to(device), self.test.to(device),
            self.num_classes, self.input_shape, self.preprocess, self.augmented, self.class_names,
        )


DATASETS: Registry[Callable[[DataConfig], DataBundle]] = Registry("dataset")


def carve_val(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split ``(x, y)`` into train and val with a fixed seed, stratified by class."""
    rng = np.random.default_rng(seed)
    val_idx = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        rng.shuffle(members)
        k = max(1, int(round(fraction * len(members)))) if len(members) > 1 else 0
        val_idx.append(members[:k])
    val_mask = np.zeros(len(y), dtype=bool)
    val_mask[np.concatenate(val_idx)] = True
    return (
        Split(torch.from_numpy(x[~val_mask]), torch.from_numpy(y[~val_mask]).long()),
        Split(torch.from_numpy(x[val_mask]), torch.from_numpy(y[val_mask]).long()),
    )


def cached_arrays(name: str, opts: dict, make: Callable[[dict], dict[str, np.ndarray]],
                  check: Callable[[dict[str, np.ndarray]], None] | None = None) -> dict[str, np.ndarray]:
    """Arrays made by ``make(opts)``, cached as ``<cache>/data/<name>-<hash of opts>.npz`` (loaded
    with ``allow_pickle=False``; written atomically). The cache is rltemp's own file: one that does
    not read back whole (truncated, an array missing, ``check`` failing) is rebuilt, with a warning."""
    import hashlib
    import io
    import json
    import logging

    from rltemp.paths import atomic_write_bytes, cache_dir

    key = hashlib.sha1(json.dumps(opts, sort_keys=True).encode()).hexdigest()[:12]
    path = cache_dir("data") / f"{name}-{key}.npz"
    logger = logging.getLogger(__name__)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as f:
                cached = {k: f[k] for k in f.files}
            if check is not None:
                check(cached)
            return cached
        except Exception as e:  # noqa: BLE001 - a damaged cache file is rebuilt, never blamed on the user
            logger.warning("the cached %s data %s is damaged (%s: %s); rebuilding it", name, path,
                           e.__class__.__name__, str(e).splitlines()[0] if str(e) else "")
    logger.info("generating %s into %s", name, path)
    arrays = make(opts)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return arrays


def load_dataset(cfg: DataConfig) -> DataBundle:
    """Build the dataset named in ``cfg`` (unknown names list the valid ones)."""
    return DATASETS.get(cfg.name)(cfg)


def check_options(name: str, options: dict, defaults: dict) -> dict:
    """Merge ``options`` over ``defaults``; unknown option names fail naming the valid ones."""
    from rltemp.errors import ConfigError, did_you_mean

    for key in options:
        if key not in defaults:
            raise ConfigError(
                f"data.options.{key}: unknown option for dataset {name!r}"
                f"{did_you_mean(key, defaults)}; valid: {', '.join(sorted(defaults))}"
            )
    return {**defaults, **options}
