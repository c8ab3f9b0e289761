"""``rltemp quickstart``: the shipped policy on students it never saw, against the grid and a hand
rule, in minutes on a laptop CPU.

A small benchmark suite run by the bench machinery (:mod:`rltemp.experiments.bench`): the teachers
(cached after the first run), then fresh students on held-out seeds 0..n-1 of the default pair
(whose pair, not whose students, the policy was trained on) and of scikit-learn's digits (a dataset
no policy ever saw), each distilled with the shipped policy (``policy:default``, zero training here),
the best of fixed:{1,2,4,8} chosen per seed on *validation* ("grid") and the best hand schedule of
the default pair (``anneal:6,1,linear``); the table (last-epoch test accuracy, paired differences
with 95 % t intervals, wall time per run), the schedule the policy chose per pair, and the
TensorBoard dashboard.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rltemp.experiments.bench import PairSpec, Suite, check_suite, run_suite, summary_lines

SHIPPED = "policy:default"
DASHBOARD_URL = "http://localhost:6006/#custom_scalars&_smoothingWeight=0&regexInput=s0%24"
HAND_RULE = "anneal:6,1,linear"
PAIRS = [("default", "envs/default.yaml", []), ("digits", "envs/digits.yaml", [])]  # name, preset, overrides


def quickstart_suite(seeds: int) -> Suite:
    return Suite(name="quickstart", seeds=list(range(seeds)),
                 pairs=[PairSpec(name, config, over, [SHIPPED, "grid", HAND_RULE]) for name, config, over in PAIRS],
                 references=["grid", HAND_RULE])


def quickstart(seeds: int = 3, jobs: int = 2, out: str | None = None, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out_dir = Path(out or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    suite = check_suite(quickstart_suite(seeds), "quickstart")
    print(f"rltemp quickstart -> {out_dir}: the teachers (cached after the first run), then fresh students on held-out "
          f"seeds 0..{seeds - 1} of {' and '.join(n for n, _, _ in PAIRS)}, distilled with the shipped policy "
          f"({SHIPPED}), the grid (best of fixed:1,2,4,8 on validation) and {HAND_RULE}")
    res = run_suite(suite, out_dir, jobs, progress, say=lambda m: print(f"  {m}"))
    total = time.perf_counter() - t0
    lines = summary_lines(suite, res["rows"], res["policy"])
    lines.append(f"The schedule {SHIPPED} chose on each pair: {out_dir / 'schedules.png'}. "
                 f"Total quickstart wall time: {total:.0f}s.")
    print("\n" + "\n".join(lines))
    print(f"\nSee how hot, for whom and when:\n  tensorboard --logdir {out_dir}\nthen open {DASHBOARD_URL}\n"
          "(the CUSTOM SCALARS tab, filtered to seed 0 of every method; IMAGES has the schedule per pair)")
    return {**res, "wall_time_s": total}
