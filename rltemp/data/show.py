"""``rltemp data show``: a PNG grid of samples, one row per class, for any image dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rltemp.config import DataConfig
from rltemp.data.base import load_dataset
from rltemp.errors import RltempError


def show_dataset(name: str, out: str | Path, classes: int = 10, per_class: int = 12,
                 root: str | None = None, split: str = "train", select: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = load_dataset(DataConfig(name=name, root=root))
    if len(data.input_shape) < 2:
        raise RltempError(f"dataset {name!r} is not an image dataset (input shape {data.input_shape})")
    s = getattr(data, split)
    x = data.preprocess(s.x[: min(len(s), 20000)], False, None).float().numpy()
    y = s.y[: len(x)].numpy()
    if select:
        names = data.class_names or [str(c) for c in range(data.num_classes)]
        unknown = [ch for ch in select if ch not in names]
        if unknown:
            raise RltempError(f"--select: {''.join(unknown)!r} are not classes of {name!r}")
        shown = [names.index(ch) for ch in select]
    else:
        shown = [c for c in range(data.num_classes) if (y == c).any()][:classes]
    fig, axes = plt.subplots(len(shown), per_class + 1, figsize=(0.6 * (per_class + 1), 0.6 * len(shown)),
                             squeeze=False)
    for r, c in enumerate(shown):
        idx = np.flatnonzero(y == c)[:per_class]
        label = data.class_names[c] if data.class_names else str(c)
        axes[r, 0].text(0.5, 0.5, label, ha="center", va="center", fontsize=12)
        for j in range(per_class + 1):
            axes[r, j].axis("off")
        for j, i in enumerate(idx):
            img = x[i]
            img = img[0] if img.shape[0] == 1 else np.transpose(img, (1, 2, 0))
            img = (img - img.min()) / max(float(img.max() - img.min()), 1e-8)
            axes[r, j + 1].imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    fig.suptitle(f"{name} ({split})", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
