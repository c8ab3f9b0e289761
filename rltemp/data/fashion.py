"""``fashion-mnist``: Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) from its original idx files.

70 000 grey 28×28 images of clothing in 10 classes, as the four files ``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (gzip or
plain). They are read from ``data.root`` or, without it, from the first folder that has them:
``/usr/share/datasets/fashion-mnist/`` (Debian's ``dataset-fashion-mnist`` package:
``apt-get install dataset-fashion-mnist``) or ``data/fashion-mnist/``. Nothing is downloaded.

idx format (LeCun et al.): a big-endian header — magic ``0x00000803`` for images / ``0x00000801`` for
labels, then the item count, then rows and columns for images — followed by uint8 data. Every file
is checked (magic, header, length, label range, counts matching) with a one-line error.

Splits (deterministic for ``split_seed``): the 60 000 training images are shuffled once and cut
into disjoint parts — ``teacher_size`` images the teacher trains on, ``student_size`` images the
student trains on (KD helps most when the student has less data than the teacher), and
``val_size`` images for validation, disjoint from both; ``role`` says which training part this
bundle holds (a preset gives the teacher ``teacher.data_options: {role: teacher}``). The test
split is the official 10 000-image test set. ``data.val_fraction`` does not apply here.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from rltemp.config import DataConfig
from rltemp.data.base import DATASETS, DataBundle, Split, check_options
from rltemp.errors import ConfigError, RltempError

SYSTEM_ROOT = Path("/usr/share/datasets/fashion-mnist")
LOCAL_ROOT = Path("data/fashion-mnist")
FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte",
}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
DEFAULTS = {"teacher_size": 20000, "student_size": 3000, "val_size": 2000, "role": "student"}
MEAN, STD = 0.2860, 0.3530  # of the training images


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    return None


def find_root(root: str | None) -> Path:
    """The folder holding the four files: ``root`` if given, else the system package's, else ``data/``."""
    candidates = [Path(root).expanduser()] if root else [SYSTEM_ROOT, LOCAL_ROOT]
    for c in candidates:
        if all(_find(c, f) for f in FILES.values()):
            return c
    where = " or ".join(str(c) for c in candidates)
    missing = [f for f in FILES.values() if not _find(candidates[0], f)]
    raise RltempError(f"fashion-mnist: no idx files in {where} (missing {missing[0]}[.gz]); install them with "
                      "`apt-get install dataset-fashion-mnist` (Debian/Ubuntu) or put the four official files "
                      "from github.com/zalandoresearch/fashion-mnist in data/fashion-mnist/, or set data.root")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """One idx file as a uint8 array (N,) or (N, rows, cols), fully validated."""
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:
        raise RltempError(f"{path}: cannot be read ({str(e).splitlines()[0] or e.__class__.__name__})") from None
    dims = 3 if magic == IMAGES_MAGIC else 1
    header = 4 * (1 + dims)
    if len(raw) < header:
        raise RltempError(f"{path}: truncated idx file ({len(raw)} bytes, header needs {header})")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise RltempError(f"{path}: wrong magic number 0x{found:08x} (expected 0x{magic:08x}: "
                          f"{'images' if magic == IMAGES_MAGIC else 'labels'})")
    shape = tuple(int.from_bytes(raw[4 * (i + 1):4 * (i + 2)], "big") for i in range(dims))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise RltempError(f"{path}: {'truncated' if len(raw) < expected else 'oversized'} idx file "
                          f"({len(raw)} bytes, the header {shape} says {expected})")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(_find(root, FILES[f"{split}_x"]), IMAGES_MAGIC)
    y = read_idx(_find(root, FILES[f"{split}_y"]), LABELS_MAGIC)
    if len(x) != len(y):
        raise RltempError(f"fashion-mnist {split}: {len(x)} images but {len(y)} labels in {root}")
    if x.shape[1:] != (28, 28):
        raise RltempError(f"fashion-mnist {split}: images are {x.shape[1]}x{x.shape[2]}, expected 28x28")
    if len(y) and int(y.max()) > 9:
        raise RltempError(f"fashion-mnist {split}: label {int(y.max())} outside 0..9 in {root}")
    return x, y


def _validate(opts: dict, n_train: int) -> None:
    for key in ("teacher_size", "student_size", "val_size"):
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"data.options.{key} must be a positive integer, got {v!r}")
    total = opts["teacher_size"] + opts["student_size"] + opts["val_size"]
    if total > n_train:
        raise ConfigError(f"data.options: teacher_size + student_size + val_size = {total} exceeds the "
                          f"{n_train} training images")
    if opts["role"] not in ("teacher", "student"):
        raise ConfigError(f"data.options.role must be teacher or student, got {opts['role']!r}")


def _to_float(x: np.ndarray) -> torch.Tensor:
    return ((torch.from_numpy(x.astype(np.float32)) / 255.0 - MEAN) / STD)[:, None]


@DATASETS.register("fashion-mnist")
def fashion_mnist(cfg: DataConfig) -> DataBundle:
    opts = check_options("fashion-mnist", cfg.options, DEFAULTS)
    root = find_root(cfg.root)
    x, y = read_split(root, "train")
    _validate(opts, len(y))
    xt, yt = read_split(root, "test")
    order = np.random.default_rng(cfg.split_seed).permutation(len(y))
    t_end = opts["teacher_size"]
    s_end = t_end + opts["student_size"]
    parts = {"teacher": order[:t_end], "student": order[t_end:s_end], "val": order[s_end:s_end + opts["val_size"]]}
    train_idx, val_idx = np.sort(parts[opts["role"]]), np.sort(parts["val"])
    return DataBundle(
        "fashion-mnist",
        Split(_to_float(x[train_idx]), torch.from_numpy(y[train_idx].astype(np.int64))),
        Split(_to_float(x[val_idx]), torch.from_numpy(y[val_idx].astype(np.int64))),
        Split(_to_float(xt), torch.from_numpy(yt.astype(np.int64))),
        10, (1, 28, 28), class_names=list(CLASSES),
    )
