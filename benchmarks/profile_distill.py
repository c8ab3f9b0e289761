"""Where a distill run's time goes: the top functions by own time, per KD step, under cProfile.

    python benchmarks/profile_distill.py [envs/default.yaml] [key=value ...] [-T fixed:4] [--top 12]

Runs ``rltemp distill`` in this process (teacher from the cache; train it once beforehand), one
torch thread, profiling only the epochs (``Distiller.run_epoch``: training steps and validation) or,
with ``--scope run``, the whole command, and prints each top function's own time in microseconds per KD
step and its share of the run. Run it on two checkouts (``PYTHONPATH=/path/to/other/checkout``)
to compare before/after; cProfile's own overhead inflates Python-heavy paths, so read shares and
differences, not absolute speed (``distiller_overhead.py`` measures that).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import tempfile
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    ap.add_argument("-T", "--temperature", default="fixed:4")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--scope", choices=["epochs", "run"], default="epochs",
                    help="epochs: only Distiller.run_epoch (training + validation); run: the whole command")
    a = ap.parse_intermixed_args()
    torch.set_num_threads(1)
    import rltemp
    from rltemp.cli import main as cli
    from rltemp.kd.trainer import Distiller

    prof = cProfile.Profile()
    if a.scope == "epochs":  # profile only inside the epochs: no imports, teacher loading or logging
        run_epoch = Distiller.run_epoch

        def profiled(self):  # noqa: ANN001, ANN202
            prof.enable()
            try:
                return run_epoch(self)
            finally:
                prof.disable()

        Distiller.run_epoch = profiled

    with tempfile.TemporaryDirectory() as tmp:
        argv = ["distill", a.preset, "-T", a.temperature, "--out", f"{tmp}/run", *a.overrides]
        if a.scope == "run":
            prof.enable()
        rc = cli(argv)
        if a.scope == "run":
            prof.disable()
        if rc:
            raise SystemExit(f"distill failed with status {rc}")
        res = json.loads(Path(f"{tmp}/run/results.json").read_text())
    steps = int(res["kd_steps"])
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # own time of every function
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[: a.top]
    print(f"{rltemp.__file__}: {a.preset} {' '.join(a.overrides)} -T {a.temperature}, scope {a.scope}: {steps} KD "
          f"steps, "
          f"{total:.2f} s profiled, {1e6 * total / steps:.0f} us/step")
    print("| function | calls/step | own us/step | share |")
    print("|---|---|---|---|")
    for (file, line, name), (_, ncalls, tt, _, _) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"| `{name}` ({where}) | {ncalls / steps:.1f} | {1e6 * tt / steps:.0f} | {100 * tt / total:.1f} % |")


if __name__ == "__main__":
    main()
