"""Reference runs: the validation curve of a fixed rule on the very same student, which rewards are
measured against.

``env.reward_reference`` is a SPEC (e.g. ``fixed:4``) or ``grid``: the fixed T of {1, 2, 4, 8}
whose run of this student ends highest on validation — the constant a grid search would pick for it,
so a policy only earns by beating what a grid gives ("do no harm" is the baseline). Subtracting the
reference's gain removes the seed-to-seed variance of the learning curve from the return. Curves are
computed on first use and cached per student, in memory and as JSON in ``$RLTEMP_CACHE/references/``,
keyed by everything that determines them (data, teacher and its weights, student, recipe, SPEC,
seed); a damaged cache file is computed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rltemp.kd.strategies import GRID, StrategyContext, build_strategy
from rltemp.kd.trainer import Distiller, evaluate
from rltemp.paths import atomic_write_bytes, cache_dir


class References:
    """The reference curves of ``spec`` for the pairs of an environment (``pairs``, and
    ``new_distiller(seed, index, strategy)`` to run a student of pair ``index``)."""

    def __init__(self, spec: str, pairs: list[Any], new_distiller: Callable[[int, int, Any], Distiller],
                 folder: str | Path | None = None) -> None:
        self.spec, self.pairs, self.new_distiller = spec, pairs, new_distiller
        self.folder = Path(folder) if folder is not None else cache_dir("references")
        self._curves: dict[tuple[str, int, int], list[float]] = {}
        self._tsha: dict[int, str] = {}
        for s in self.specs():  # fail now on a bad SPEC
            build_strategy(s, StrategyContext(pairs[0].data.num_classes, pairs[0].cfg.distill.epochs))

    def specs(self) -> list[str]:
        """The runs behind the reference: a SPEC, or ``grid``'s four fixed temperatures."""
        return list(GRID) if self.spec == "grid" else ([self.spec] if self.spec else [])

    def curve(self, seed: int, index: int) -> list[float]:
        """Validation accuracy before training and after every epoch of the reference run of the
        student ``seed`` of pair ``index`` (with ``grid``: the best constant's, the first of equals)."""
        return max((self.run(s, seed, index) for s in self.specs()), key=lambda c: c[-1])

    def run(self, spec: str, seed: int, index: int) -> list[float]:
        """One SPEC's validation curve of this student (cached)."""
        key = (spec, index, seed)
        if key in self._curves:
            return self._curves[key]
        p = self.pairs[index]
        ident = {"data": asdict(p.cfg.data), "teacher": asdict(p.cfg.teacher), "distill": asdict(p.cfg.distill),
                 "student": asdict(p.cfg.student), "reference": spec, "reward": "val_acc", "seed": seed,
                 "teacher_sha1": self._teacher_sha1(index)}
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.folder / f"{p.cfg.student.model}-s{seed}-{digest}.json"
        if path.exists():
            try:
                curve = json.loads(path.read_text())
                if isinstance(curve, list) and len(curve) == p.cfg.distill.epochs + 1:
                    self._curves[key] = [float(v) for v in curve]
                    return self._curves[key]
            except (ValueError, TypeError):
                pass  # a damaged cache file is computed again (and rewritten)
        d = self.new_distiller(seed, index, build_strategy(spec, StrategyContext(p.data.num_classes,
                                                                               p.cfg.distill.epochs)))
        curve = [evaluate(d.student, d.data.val, d.data)[0]]
        while not d.done:
            curve.append(d.run_epoch().val_acc)
        self._curves[key] = curve
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(curve).encode())
        return curve

    def _teacher_sha1(self, index: int) -> str:
        """The pair's teacher's weights, so a retrained teacher never meets a stale reference curve."""
        if index not in self._tsha:
            h = hashlib.sha1()
            for v in self.pairs[index].teacher.state_dict().values():
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            self._tsha[index] = h.hexdigest()
        return self._tsha[index]
