"""``glyphs``: a many-class image benchmark rendered from the fonts that ship with matplotlib.

This is a *synthetic* benchmark built from *real* fonts. Classes are the 94 printable ASCII
characters (``!`` .. ``~``) plus, by default, 16 lowercase Greek letters: 110 classes. Each image is
one character drawn from a randomly chosen font among matplotlib's bundled families:

- DejaVu Sans, Sans Mono and Serif in regular, bold, oblique/italic and bold-oblique (12 fonts);
- STIX General regular, bold, italic and bold-italic (4);
- Computer Modern cmr10, cmb10, cmss10, cmti10, cmtt10, cmmi10 (6), for letters and digits only:
  their TeX encodings put other glyphs at punctuation code points.

A font is used for a class only if it has a glyph for that character. Glyphs are rasterised once
with FreeType (``matplotlib.ft2font``) at a fixed size on a common baseline, so relative size and
position survive ("." stays small, "g" descends). Each sample then gets a random affine transform
(scale, rotation, shear, translation), is resampled to ``2*size`` and average-pooled to
``size x size`` (anti-aliasing), and receives Gaussian pixel noise. All randomness comes from one
seeded ``torch.Generator`` per split, so a seed gives identical arrays; the result is cached as
``.npz``. Look-alike classes (O/0/o, l/1/I/|, x/χ, p/ρ, v/ν) give the teacher's soft labels real
"dark knowledge" — the point of this set.

``heldout_fonts`` > 0 reserves that fraction of each class's fonts for the test split only
(a domain-shift variant).
"""

from __future__ import annotations

import logging
import math
import os
import string

import numpy as np
import torch
import torch.nn.functional as F

from rltemp.config import DataConfig
from rltemp.data.base import DATASETS, DataBundle, Split, cached_arrays, carve_val, check_options
from rltemp.errors import ConfigError

log = logging.getLogger(__name__)

ASCII = [c for c in string.printable if 33 <= ord(c) <= 126]
GREEK = list("αβγδεζηθλμξπσφψω")
FONT_FILES = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
    "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
    "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf", "cmmi10.ttf",
]
_ALNUM = set(string.ascii_letters + string.digits)
CANVAS = 64  # rasterisation canvas (pixels); glyphs are drawn at 40 px on a baseline at 3/4 height

DEFAULTS = {
    "classes": "".join(ASCII) + "".join(GREEK),
    "size": 16,
    "train_per_class": 100,
    "test_per_class": 50,
    "seed": 0,
    "heldout_fonts": 0.0,
    "scale": [0.7, 1.2],
    "rotation_deg": 20.0,
    "shear": 0.3,
    "translate": 0.12,
    "noise": 0.25,
}


# Valid ranges: glyphs are rasterised on a 64-px canvas (sizes above 64 add no detail), and the
# arrays live in memory (110 classes x 5000 x 64 x 64 bytes = 2.3 GB at the upper limits).
LIMITS = {"size": (4, CANVAS), "train_per_class": (1, 5000), "test_per_class": (1, 5000)}


def _font_dir() -> str:
    import matplotlib

    return os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")


def render_templates(classes: str) -> tuple[np.ndarray, list[list[int]]]:
    """Rasterise every (font, class) pair once: returns canvases (F, C, 64, 64) in [0, 1] and, per
    class, the indices of the fonts that have the glyph."""
    from matplotlib.ft2font import FT2Font

    canvases = np.zeros((len(FONT_FILES), len(classes), CANVAS, CANVAS), dtype=np.float32)
    has = np.zeros((len(FONT_FILES), len(classes)), dtype=bool)
    base = int(CANVAS * 0.75)
    for fi, fname in enumerate(FONT_FILES):
        font = FT2Font(os.path.join(_font_dir(), fname))
        for ci, ch in enumerate(classes):
            if fname.startswith("cm") and ch not in _ALNUM:
                continue
            if font.get_char_index(ord(ch)) == 0:
                continue
            font.set_size(40, 72)
            font.set_text(ch)
            font.draw_glyphs_to_bitmap(antialiased=True)
            img = np.asarray(font.get_image(), dtype=np.float32) / 255.0
            if img.size == 0 or img.max() <= 0:
                continue
            h, w = img.shape
            desc = int(round(font.get_descent() / 64))
            top = base - (h - desc)
            left = (CANVAS - w) // 2
            t0, l0 = max(top, 0), max(left, 0)
            t1, l1 = min(top + h, CANVAS), min(left + w, CANVAS)
            canvases[fi, ci, t0:t1, l0:l1] = img[t0 - top : t1 - top, l0 - left : l1 - left]
            has[fi, ci] = True
    fonts_per_class = [list(np.flatnonzero(has[:, c])) for c in range(len(classes))]
    return canvases, fonts_per_class


def _augment(templates: torch.Tensor, opts: dict, gen: torch.Generator) -> torch.Tensor:
    """Random affine + anti-aliased resampling + pixel noise on a batch of (N, 64, 64) canvases."""
    n = templates.shape[0]
    size = int(opts["size"])

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    s = u(*opts["scale"])
    rot = u(-opts["rotation_deg"], opts["rotation_deg"]) * math.pi / 180
    sh = u(-opts["shear"], opts["shear"])
    tx, ty = u(-opts["translate"], opts["translate"]), u(-opts["translate"], opts["translate"])
    # Output -> input sampling matrix: inverse of (rotate . shear . scale), so glyphs grow with s.
    cos, sin = torch.cos(rot), torch.sin(rot)
    a = torch.stack([torch.stack([cos, -sin + cos * sh], -1), torch.stack([sin, cos + sin * sh], -1)], -2)
    a = a * s[:, None, None]
    inv = torch.linalg.inv(a)
    theta = torch.cat([inv, torch.stack([tx, ty], -1)[:, :, None]], -1)
    # The canvas baseline sits low; centre the sampled window on the glyph band.
    theta[:, 1, 2] += 0.05
    grid = F.affine_grid(theta, (n, 1, 2 * size, 2 * size), align_corners=False)
    out = F.grid_sample(templates[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = F.avg_pool2d(out, 2)
    out = out + opts["noise"] * torch.randn(out.shape, generator=gen)
    return out.clamp(0.0, 1.0)


def generate(opts: dict) -> dict[str, np.ndarray]:
    """Generate train and test arrays (uint8 images, int64 labels) for the given options."""
    classes = opts["classes"]
    canvases, fonts_per_class = render_templates(classes)
    missing = [classes[c] for c, f in enumerate(fonts_per_class) if not f]
    if missing:
        raise ConfigError(f"data.options.classes: no bundled font has a glyph for {''.join(missing)!r}")
    rng = np.random.default_rng(opts["seed"])
    train_fonts, test_fonts = [], []
    for fonts in fonts_per_class:
        fonts = list(rng.permutation(fonts))
        k = int(round(opts["heldout_fonts"] * len(fonts))) if len(fonts) > 1 else 0
        k = min(k, len(fonts) - 1)
        test_fonts.append(fonts[:k] if k else fonts)
        train_fonts.append(fonts[k:])
    templates = torch.from_numpy(canvases)
    out = {}
    for split, per_class, fonts, seed in (
        ("train", opts["train_per_class"], train_fonts, opts["seed"] * 2 + 1),
        ("test", opts["test_per_class"], test_fonts, opts["seed"] * 2 + 2),
    ):
        gen = torch.Generator().manual_seed(int(seed))
        labels = torch.arange(len(classes)).repeat_interleave(int(per_class))
        choice = torch.cat([
            torch.tensor(f)[torch.randint(len(f), (int(per_class),), generator=gen)] for f in fonts
        ])
        imgs = _augment(templates[choice, labels], opts, gen)
        out[f"x_{split}"] = (imgs * 255).round().to(torch.uint8).numpy()
        out[f"y_{split}"] = labels.numpy()
    return out


def _validate(opts: dict) -> None:
    classes = opts["classes"]
    if not isinstance(classes, str) or len(set(classes)) != len(classes) or len(classes) < 2:
        raise ConfigError("data.options.classes must be a string of at least 2 distinct characters")
    for key, (lo, hi) in LIMITS.items():
        v = opts[key]
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ConfigError(f"data.options.{key} must be an integer in [{lo}, {hi}], got {v!r}")
    if not 0.0 <= float(opts["heldout_fonts"]) < 1.0:
        raise ConfigError(f"data.options.heldout_fonts must be in [0, 1), got {opts['heldout_fonts']}")
    lo, hi = opts["scale"]
    if not 0 < lo <= hi:
        raise ConfigError(f"data.options.scale must be [lo, hi] with 0 < lo <= hi, got {opts['scale']}")


def _check_cache(a: dict[str, np.ndarray], classes: int) -> None:
    for split in ("train", "test"):
        x, y = a[f"x_{split}"], a[f"y_{split}"]
        if len(x) != len(y) or len(y) == 0 or int(y.min()) < 0 or int(y.max()) >= classes:
            raise ValueError(f"{split} arrays do not match {classes} classes")


@DATASETS.register("glyphs")
def glyphs(cfg: DataConfig) -> DataBundle:
    opts = check_options("glyphs", cfg.options, DEFAULTS)
    _validate(opts)
    a = cached_arrays("glyphs", opts, generate, lambda a: _check_cache(a, len(opts["classes"])))

    def to_float(x: np.ndarray) -> np.ndarray:
        return ((x.astype(np.float32) / 255.0) - 0.5) / 0.5

    train, val = carve_val(to_float(a["x_train"]), a["y_train"], cfg.val_fraction, cfg.split_seed)
    test = Split(torch.from_numpy(to_float(a["x_test"])), torch.from_numpy(a["y_test"]))
    size = int(opts["size"])
    return DataBundle("glyphs", train, val, test, len(opts["classes"]), (1, size, size),
                      class_names=list(opts["classes"]))
