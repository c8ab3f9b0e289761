"""Your own data: ``arrays`` (a ``.npz`` file or a folder of ``.npy`` files) and ``imagefolder`` (a
folder of images by class, as torchvision's ``ImageFolder`` lays them out).

**arrays** — ``data.options.path``: a ``.npz`` holding ``x_train`` and ``y_train`` and optionally
``x_val``, ``y_val``, ``x_test``, ``y_test`` (or a folder with those names as ``.npy`` files), read
with ``allow_pickle=False``. ``x``: (N, F) vectors, (N, H, W) grey images or (N, C, H, W) images,
any real dtype (integers, e.g. uint8 pixels, are divided by ``data.options.scale``, 255 by
default; floats are used as they are); ``y``: (N,) integer labels in [0, C), C = the largest
training label + 1 (or ``data.options.num_classes``). Without ``x_val`` the validation split is carved from train
(``data.val_fraction``, ``data.split_seed``, stratified), as for every dataset; without ``x_test``
a test split is carved from train the same way first (``data.options.test_fraction``, 0.2). Every
array is checked — rank, shape agreement, dtype (no objects), length agreement, label range,
NaN / inf, empty splits — with a one-line error naming the array.

**imagefolder** — ``data.options.root``: ``ROOT/train/<class>/<image>`` (png, jpg, jpeg, bmp,
gif, webp), and optionally ``ROOT/val/<class>/...`` and ``ROOT/test/<class>/...``; class names are
the training split's folder names in sorted order (the run folder lists them in ``classes.json``).
Images are read with Pillow, in sorted file order within a class, converted to grey (``channels``
1) or RGB (3; ``auto``: 1 when every image is grey, else 3) and resized to
``data.options.size`` (an int or [H, W]; ``null``: the first image's size, which every image must
then have). Pixels are scaled to [0, 1] — the very arrays ``arrays`` would read from a ``.npz`` of
the same uint8 pixels in the same order (tested). An unreadable image is a one-line error naming
the file, or, with ``data.options.skip_bad: true``, skipped and counted in a warning.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rltemp.config import DataConfig
from rltemp.data.base import DATASETS, DataBundle, Split, carve_val, check_options
from rltemp.errors import ConfigError, RltempError

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
ARRAYS_DEFAULTS = {"path": None, "num_classes": None, "scale": 255.0, "test_fraction": 0.2}
FOLDER_DEFAULTS = {"root": None, "size": None, "channels": "auto", "skip_bad": False, "test_fraction": 0.2}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The named arrays of a ``.npz`` file or a folder of ``.npy`` files, without unpickling anything."""
    import zipfile

    names = [f"{k}_{s}" for s in SPLITS for k in ("x", "y")]
    if path.is_file() and not zipfile.is_zipfile(path):
        raise RltempError(f"{path}: not a readable .npz (a zip of .npy arrays, as numpy.savez writes)")
    try:
        if path.is_dir():
            return {n: np.load(path / f"{n}.npy", allow_pickle=False) for n in names if (path / f"{n}.npy").is_file()}
        with np.load(path, allow_pickle=False) as f:
            return {n: f[n] for n in names if n in f.files}
    except ValueError as e:  # object arrays, or a malformed .npy header
        raise RltempError(f"{path}: cannot be read without unpickling ({str(e).splitlines()[0]})") from None
    except Exception as e:  # noqa: BLE001 - not a zip / truncated: the user's file is unreadable
        why = f"{e.__class__.__name__}: {e}"
        raise RltempError(f"{path}: not a readable .npz or folder of .npy files ({why})") from None


def check_arrays(arrays: dict[str, np.ndarray], where: str, num_classes: int | None = None) -> int:
    """Check the splits' arrays (one-line errors naming the array); returns the number of classes."""
    for need in ("x_train", "y_train"):
        if need not in arrays:
            raise RltempError(f"{where}: no {need} (found: {', '.join(sorted(arrays)) or 'nothing'})")
    feature_shape = None
    classes = 0
    for split in SPLITS:
        if f"x_{split}" not in arrays and f"y_{split}" not in arrays:
            continue
        for k in ("x", "y"):
            if f"{k}_{split}" not in arrays:
                raise RltempError(f"{where}: {('y' if k == 'y' else 'x')}_{split} is missing beside its partner")
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype.kind not in "biuf":
            raise RltempError(f"{where}: x_{split} has dtype {x.dtype}; numbers are expected")
        if x.ndim not in (2, 3, 4):
            raise RltempError(f"{where}: x_{split} has rank {x.ndim} (shape {x.shape}); expected (N, F), (N, H, W) "
                              "or (N, C, H, W)")
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise RltempError(f"{where}: y_{split} must be a 1-D integer array, "
                              f"got shape {y.shape} and dtype {y.dtype}")
        if len(x) != len(y):
            raise RltempError(f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}")
        if len(y) == 0:
            raise RltempError(f"{where}: the {split} split is empty")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise RltempError(f"{where}: x_{split} holds NaN or infinite values")
        if feature_shape is not None and x.shape[1:] != feature_shape:
            raise RltempError(f"{where}: x_{split} has rows of shape {x.shape[1:]}, x_train {feature_shape}")
        feature_shape = x.shape[1:]
        if int(y.min()) < 0:
            raise RltempError(f"{where}: y_{split} has a negative label ({int(y.min())})")
        if split == "train":
            classes = num_classes if num_classes is not None else int(y.max()) + 1
        if int(y.max()) >= classes:
            raise RltempError(f"{where}: y_{split} has the label {int(y.max())}, out of range for {classes} classes "
                              "(the training labels' largest + 1, or data.options.num_classes)")
    if classes < 2:
        raise RltempError(f"{where}: the labels name {classes} class; at least 2 are needed")
    return classes


def bundle_from_arrays(name: str, arrays: dict[str, np.ndarray], cfg: DataConfig, scale: float, test_fraction: float,
                       num_classes: int | None = None, class_names: list[str] | None = None,
                       where: str = "data") -> DataBundle:
    """Train / val / test splits of checked arrays: the missing splits carved from train (stratified,
    with ``data.split_seed``): the test split first (``test_fraction``), then validation."""
    classes = check_arrays(arrays, where, num_classes)

    def as_float(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32) / np.float32(scale) if x.dtype.kind in "biu" else x.astype(np.float32)
        return x[:, None] if x.ndim == 3 else x  # grey images: one channel

    x, y = as_float(arrays["x_train"]), arrays["y_train"].astype(np.int64)
    if "x_test" in arrays:
        test = Split(torch.from_numpy(as_float(arrays["x_test"])), torch.from_numpy(arrays["y_test"].astype(np.int64)))
    else:
        if not 0.0 < test_fraction < 1.0:
            raise ConfigError(f"data.options.test_fraction must be in (0, 1), got {test_fraction}")
        rest, test = carve_val(x, y, test_fraction, cfg.split_seed + 1)
        x, y = rest.x.numpy(), rest.y.numpy()
    if "x_val" in arrays:
        train = Split(torch.from_numpy(x), torch.from_numpy(y))
        val = Split(torch.from_numpy(as_float(arrays["x_val"])), torch.from_numpy(arrays["y_val"].astype(np.int64)))
    else:
        train, val = carve_val(x, y, cfg.val_fraction, cfg.split_seed)
    for split, part in (("train", train), ("val", val), ("test", test)):
        if len(part) == 0:
            raise RltempError(f"{where}: the {split} split is empty (too few instances to carve it)")
    return DataBundle(name, train, val, test, classes, tuple(train.x.shape[1:]), class_names=class_names)


@DATASETS.register("arrays")
def arrays(cfg: DataConfig) -> DataBundle:
    opts = check_options("arrays", cfg.options, ARRAYS_DEFAULTS)
    if not opts["path"]:
        raise ConfigError("data.options.path: the arrays dataset needs a .npz file or a folder of .npy files")
    path = Path(str(opts["path"])).expanduser()
    if not path.exists():
        raise RltempError(f"data.options.path: {path} does not exist")
    if not (isinstance(opts["scale"], (int, float)) and opts["scale"] > 0):
        raise ConfigError(f"data.options.scale must be a number > 0, got {opts['scale']!r}")
    return bundle_from_arrays("arrays", _read_arrays(path), cfg, float(opts["scale"]), float(opts["test_fraction"]),
                              opts["num_classes"], where=str(path))


def _image_size(size: Any) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
    if not (isinstance(hw, list) and len(hw) == 2 and all(isinstance(v, int) and 1 <= v <= 4096 for v in hw)):
        raise ConfigError(f"data.options.size must be an integer or [H, W] in 1..4096, got {size!r}")
    return int(hw[0]), int(hw[1])


def _load_image(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        im = im.convert(mode)
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


def read_image_folder(root: Path, channels: Any = "auto", size: Any = None,
                      skip_bad: bool = False) -> tuple[dict[str, np.ndarray], list[str]]:
    """uint8 arrays ``x_<split>``, (N, H, W) grey or (N, 3, H, W) colour, labels ``y_<split>``, and the class
    names, from ``root/<split>/<class>/<image>``."""
    from PIL import UnidentifiedImageError

    if not (root / "train").is_dir():
        raise RltempError(f"data.options.root: {root} has no train/ folder (expected {root}/train/<class>/<image>)")
    classes = sorted(d.name for d in (root / "train").iterdir() if d.is_dir())
    if len(classes) < 2:
        raise RltempError(f"{root / 'train'}: {len(classes)} class folder(s); at least 2 are needed")
    files = {s: [(f, i) for i, c in enumerate(classes) if (root / s / c).is_dir()
                 for f in sorted((root / s / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
             for s in SPLITS if (root / s).is_dir()}
    for s in files:
        extra = sorted({d.name for d in (root / s).iterdir() if d.is_dir()} - set(classes))
        if extra:
            raise RltempError(f"{root / s}: class folder {extra[0]!r} is not among train/'s classes")
    if channels not in (1, 3, "auto"):
        raise ConfigError(f"data.options.channels must be 1, 3 or auto, got {channels!r}")
    resize = _image_size(size)
    hw = resize
    mode = "L" if channels == 1 else "RGB"  # auto: read in colour, keep one channel if every image is grey
    out, skipped = {}, 0
    for s, items in files.items():
        xs, ys = [], []
        for f, label in items:
            try:
                img = _load_image(f, mode, resize)
            except (OSError, UnidentifiedImageError, ValueError) as e:
                if not skip_bad:
                    raise RltempError(f"{f}: not a readable image ({e.__class__.__name__}); fix or remove it, or "
                                      "set data.options.skip_bad=true") from None
                skipped += 1
                continue
            if hw is None:
                hw = img.shape[:2]
            if img.shape[:2] != tuple(hw):
                raise RltempError(f"{f}: {img.shape[1]}x{img.shape[0]} pixels, the others {hw[1]}x{hw[0]}; set "
                                  "data.options.size to resize them all")
            xs.append(img if channels == 1 else img.transpose(2, 0, 1))
            ys.append(label)
        if not xs:
            raise RltempError(f"{root / s}: no readable images")
        out[f"x_{s}"], out[f"y_{s}"] = np.stack(xs), np.asarray(ys, np.int64)
    if channels == "auto" and all((x[:, :1] == x).all() for k, x in out.items() if k.startswith("x_")):
        out = {k: (x[:, 0] if k.startswith("x_") else x) for k, x in out.items()}  # grey: one channel
    if skipped:
        log.warning("imagefolder %s: skipped %d unreadable image(s) (data.options.skip_bad)", root, skipped)
    return out, classes


@DATASETS.register("imagefolder")
def imagefolder(cfg: DataConfig) -> DataBundle:
    opts = check_options("imagefolder", cfg.options, FOLDER_DEFAULTS)
    if not opts["root"]:
        raise ConfigError("data.options.root: the imagefolder dataset needs a folder (ROOT/train/<class>/<image>)")
    root = Path(str(opts["root"])).expanduser()
    if not root.is_dir():
        raise RltempError(f"data.options.root: {root} is not a folder")
    arrays_, classes = read_image_folder(root, opts["channels"], opts["size"], bool(opts["skip_bad"]))
    return bundle_from_arrays("imagefolder", arrays_, cfg, 255.0, float(opts["test_fraction"]), len(classes),
                              class_names=classes, where=str(root))
