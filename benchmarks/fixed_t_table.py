"""CE vs. fixed-T KD on a preset, over seeds: the table in the README and the default-pair criterion.

    python benchmarks/fixed_t_table.py envs/default.yaml --seeds 5 --jobs 2

Reports mean +- std of last-epoch test accuracy per method. The best fixed T is chosen on
*validation* (mean last-epoch val accuracy over seeds); the test column is only reported.
Criterion (issue 3): KD at the val-chosen T beats CE by more than 2x the larger seed std, the spread
of test accuracy over T in {1, 2, 4, 8} exceeds 3x the largest seed std, and a distill run takes <= 60 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

METHODS = ["ce", "fixed:1", "fixed:2", "fixed:4", "fixed:8"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    from rltemp.agents.parallel import distill_many
    from rltemp.config import load_config
    from rltemp.kd.pipeline import get_teacher, prepare
    from rltemp.stats import mean_std

    cfg = load_config(a.preset)
    data, device, _ = prepare(cfg)
    get_teacher(cfg, data, device, progress=False)  # train/cache once before the workers start
    with tempfile.TemporaryDirectory() as out:
        cells = [(load_config(a.preset, [f"distill.temperature={m}", f"seed={s}"]), f"{out}/{m.replace(':', '')}-s{s}")
                 for m in METHODS for s in range(a.seeds)]
        res = distill_many(cells, a.jobs)
    by = {m: [r for r in res if r["method"] == m] for m in METHODS}
    print(f"| method | test acc % (last epoch) | val acc % | wall s |   ({a.preset}, {a.seeds} seeds)")
    print("|---|---|---|---|")
    stds = []
    for m in METHODS:
        t_mean, t_std = mean_std([100 * r["test_acc"] for r in by[m]])
        v_mean, v_std = mean_std([100 * r["val_acc"] for r in by[m]])
        stds.append(t_std)
        print(f"| {m} | {t_mean:.2f} ± {t_std:.2f} | {v_mean:.2f} ± {v_std:.2f} | "
              f"{statistics.mean(r['wall_time_s'] for r in by[m]):.1f} |")
    fixed = METHODS[1:]
    best = max(fixed, key=lambda m: statistics.mean(r["val_acc"] for r in by[m]))
    best_t, best_s = mean_std([100 * r["test_acc"] for r in by[best]])
    ce_t, ce_s = mean_std([100 * r["test_acc"] for r in by["ce"]])
    means = [mean_std([100 * r["test_acc"] for r in by[m]])[0] for m in fixed]
    gain, spread, max_std = best_t - ce_t, max(means) - min(means), max(stds)
    wall = max(r["wall_time_s"] for r in res)
    ok = gain > 2 * max(best_s, ce_s) and spread > 3 * max_std and wall <= 60
    print(f"\nbest fixed T on val: {best}; KD gain over CE {gain:+.2f} pp (needs > {2 * max(best_s, ce_s):.2f}); "
          f"spread over T {spread:.2f} pp (needs > {3 * max_std:.2f}); slowest run {wall:.1f} s (needs <= 60); "
          f"criterion {'HOLDS' if ok else 'FAILS'}")


if __name__ == "__main__":
    main()
