"""Epoch time with the teacher-logit cache vs. a teacher forward pass every step, in one process.

    python benchmarks/teacher_cache.py [envs/default.yaml] [--epochs 3]

Without augmentation the teacher's logits on the training split never change, so the Distiller
computes them once (``predict_logits``) and indexes them per batch. Runs alternate (cached,
uncached, cached, ...) so machine noise hits both; prints the median epoch times and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.model=cnn2d")
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_intermixed_args()
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.strategies import StrategyContext, build_strategy
    from rltemp.kd.trainer import Distiller

    cfg = load_config(a.preset, a.overrides)
    data, device, _ = prepare(cfg)
    teacher = get_teacher(cfg, data, device, progress=False)
    times: dict[bool, list[float]] = {True: [], False: []}
    setup: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(a.epochs):
        for cached in (True, False):
            t0 = time.perf_counter()
            tr = Distiller(cfg.distill, data, build_student_model(cfg, data, 0), teacher,
                           build_strategy("fixed:4", StrategyContext(data.num_classes, cfg.distill.epochs)),
                           device=device, cache_teacher=cached)
            setup[cached].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            tr.run_epoch()
            times[cached].append(time.perf_counter() - t0)
    c, u = statistics.median(times[True]), statistics.median(times[False])
    print(f"{a.preset}: torch threads={torch.get_num_threads()} device={device}")
    print(f"epoch with teacher-logit cache: {c:.3f} s (+ one-off cache fill {statistics.median(setup[True]):.3f} s)")
    print(f"epoch with teacher forward:     {u:.3f} s")
    print(f"ratio cached / uncached: {c / u:.2f}")


if __name__ == "__main__":
    main()
