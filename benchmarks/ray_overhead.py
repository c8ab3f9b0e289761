"""Wall time of a whole suite on a local Ray vs. worker processes, same machine, same run.

    python benchmarks/ray_overhead.py [benchmarks/suites/default.yaml] [--jobs 2] [--methods M1,M2,...]

Runs the suite twice from scratch into temporary folders — ``--backend process`` then ``--backend
ray`` (a local Ray with ``--jobs`` CPUs, started and shut down by rltemp, included in the time) —
with the teachers already cached, and prints both wall times and the ratio ray / process (goal ≤
1.1). ``--methods`` restricts every pair to those methods (a shorter measurement); the per-cell
results of the two backends are compared and must be identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("suite", nargs="?", default="benchmarks/suites/default.yaml")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--methods", default=None, help="comma-separated methods to keep (default: the suite's)")
    a = ap.parse_args()
    from rltemp.config import load_config
    from rltemp.experiments.bench import load_suite, run_suite
    from rltemp.kd.pipeline import get_teacher, prepare

    suite = load_suite(a.suite)
    if a.methods:
        keep = a.methods.split(",")
        suite = dataclasses.replace(suite, methods=keep, pairs=[dataclasses.replace(p,
                                                                                    methods=[]) for p in suite.pairs])
    for p in suite.pairs:  # teachers cached before either timing
        cfg = load_config(p.config, p.overrides)
        data, device, _ = prepare(cfg)
        get_teacher(cfg, data, device, progress=False)
    walls, rows = {}, {}
    for backend in ("process", "ray"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            res = run_suite(suite, tmp, a.jobs, progress=False, backend=backend)
            walls[backend] = time.perf_counter() - t0
            rows[backend] = sorted((r["pair"], r["method"], r["seed"], r["test_acc"]) for r in res["rows"])
    n = len(rows["process"])
    print(f"{a.suite}{' (methods ' + a.methods + ')' if a.methods else ''}: {n} rows, {a.jobs} workers")
    print(f"  process {walls['process']:.1f} s   ray {walls['ray']:.1f} s   ratio ray / process "
          f"{walls['ray'] / walls['process']:.3f} (goal <= 1.1)")
    print(f"  identical per-cell results: {rows['process'] == rows['ray']}")


if __name__ == "__main__":
    main()
