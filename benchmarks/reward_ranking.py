"""Does an episode's return rank temperature schedules the way the reported metric does?

    python benchmarks/reward_ranking.py [envs/default.yaml] [--seeds 3] [--jobs 2]

Runs a set of per-epoch temperature schedules (fixed T, cooling and warming ramps, a step, a
hot-then-cool schedule and the bang-bang T = 10 / 1 schedule that gamed the loss reward in the
probes) through ``rltemp/KDSchedule-v0`` on student seeds 0..n-1 and records, per run, the
episode return under each reward signal (with γ = 1 it is 100 · the gain of that signal on the full
validation split) and the last-epoch *test* accuracy, measured by this script (never by the
environment). Prints Spearman's rank correlation between return and test accuracy over the
schedules' means and over all runs, per signal.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import statistics
from concurrent.futures import ProcessPoolExecutor


def schedules(epochs: int) -> dict[str, list[float]]:
    lin = [lambda p, a=a, b=b: a + (b - a) * p for a, b in ((6, 1), (1, 6))]
    hot = [10.0 if e < 8 else max(1.0, 10.0 - 9.0 * (e - 7) / 12) for e in range(epochs)]
    return {
        **{f"fixed {t}": [float(t)] * epochs for t in (1, 2, 4, 8)},
        "linear 6->1": [lin[0](e / epochs) for e in range(epochs)],
        "linear 1->6": [lin[1](e / epochs) for e in range(epochs)],
        "cosine 4->2": [2 + (4 - 2) * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs)],
        "step 8 -> 2": [8.0 if e < epochs // 2 else 2.0 for e in range(epochs)],
        "hot then cool": hot,
        "bang-bang 10/1": [10.0 if e % 2 == 0 else 1.0 for e in range(epochs)],
    }


def run(args: tuple[str, list[str], str, list[float], int]) -> dict[str, float]:
    import numpy as np
    import torch

    from rltemp.config import load_config
    from rltemp.envs.schedule_env import KDScheduleEnv
    from rltemp.kd.forms import temperature_to_action
    from rltemp.kd.trainer import evaluate

    preset, overrides, name, temps, seed = args
    torch.set_num_threads(1)
    env = KDScheduleEnv(load_config(preset, overrides))
    env.reset(seed=0, options={"student_seed": seed})
    d = env.distiller
    acc0, loss0 = evaluate(d.student, d.data.val, d.data)
    info: dict = {}
    for t in temps:
        _, _, _, _, info = env.step(np.array([temperature_to_action(t, env.ecfg.t_min, env.ecfg.t_max)], np.float32))
    test_acc, _ = evaluate(d.student, d.data.test, d.data)
    return {"schedule": name, "seed": seed, "val_acc": 100 * (info["val_acc"] - acc0),
            "val_loss": 100 * (loss0 - info["val_loss"]), "test_acc": 100 * test_acc}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_intermixed_args()
    from scipy.stats import spearmanr

    from rltemp.config import load_config
    from rltemp.kd.pipeline import get_teacher, prepare

    cfg = load_config(a.preset, a.overrides)
    data, device, _ = prepare(cfg)
    get_teacher(cfg, data, device, progress=False)
    jobs = [(a.preset, a.overrides, n, t, s) for n, t in schedules(cfg.distill.epochs).items() for s in range(a.seeds)]
    with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context("spawn")) as ex:
        rows = list(ex.map(run, jobs))
    names = list(dict.fromkeys(r["schedule"] for r in rows))
    mean = {n: {k: statistics.mean(r[k] for r in rows if r["schedule"] == n) for k in ("val_acc", "val_loss", "test_acc")}
            for n in names}
    print(f"{a.preset}: {len(names)} schedules x {a.seeds} seeds; return = 100 x gain of the signal on the full "
          "validation split (γ = 1)\n")
    print("| schedule | return, val_acc reward | return, val_loss reward | test acc % |")
    print("|---|---|---|---|")
    for n in sorted(names, key=lambda n: -mean[n]["test_acc"]):
        m = mean[n]
        print(f"| {n} | {m['val_acc']:+.2f} | {m['val_loss']:+.2f} | {m['test_acc']:.2f} |")
    print()
    for sig in ("val_acc", "val_loss"):
        rho_m = spearmanr([mean[n][sig] for n in names], [mean[n]["test_acc"] for n in names]).statistic
        rho_r = spearmanr([r[sig] for r in rows], [r["test_acc"] for r in rows]).statistic
        print(f"Spearman(return, test acc), reward {sig}: {rho_m:+.3f} over schedule means, {rho_r:+.3f} over all runs")


if __name__ == "__main__":
    main()
