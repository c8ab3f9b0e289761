"""Diagnostic: how much does the *first* epoch's temperature matter, everything after it fixed?

Run-level policies (RESULTS, ablations Z–Z5) decide the first epoch before anything about the student
is observed, and the kinds of student pulled that decision in opposite directions. This measures it
directly with hand schedules on the schedule env (the same Distiller as ``rltemp distill``): the same
student and seed, the first epoch at one of two temperatures, every later epoch identical — for the
default MLP-256 student followed by linear 6 -> 1 (``anneal:6,1,linear``'s epochs 1..29), and for the
CNN 16/32 student followed by T = 1 (what the grid picks for it). Training seeds 1000–1004 (never the
benchmark's held-out 0–4); the final *validation* accuracy; paired differences with a 95 % t interval.

    python benchmarks/first_epoch.py      # about 3.5 min on 2 cores
"""
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def run(args):  # noqa: ANN001, ANN201 - one student run in a worker process
    import torch

    from rltemp.envs.schedule_env import KDScheduleEnv
    from rltemp.kd.forms import temperature_to_action

    torch.set_num_threads(1)
    name, over, seed, t0, rest = args
    env = KDScheduleEnv("envs/default.yaml", [*over, "env.reward_reference="])
    env.reset(options={"student_seed": seed, "pair": 0})
    E = env.cfg.distill.epochs
    for k in range(E):
        t = t0 if k == 0 else rest(k, E)
        *_, info = env.step(np.array([temperature_to_action(t, 1, 10)], np.float32))
    return name, t0, seed, info["val_acc"]


def cold(k: int, E: int) -> float:  # noqa: N803
    return 1.0


def anneal(k: int, E: int) -> float:  # noqa: N803
    return 6 - 5 * k / (E - 1)  # linear 6 -> 1, as anneal:6,1,linear


def main() -> None:
    from rltemp.experiments.stats import paired_ci

    cnn = ["student.model=cnn2d", "student.options={channels: [16, 32], convs_per_stage: 1}"]
    jobs = [("cnn16x32 then T=1", cnn, s, t0, cold) for s in range(1000, 1005) for t0 in (1.0, 4.0)]
    jobs += [("mlp256 then linear 6->1", [], s, t0, anneal) for s in range(1000, 1005) for t0 in (1.0, 6.0)]
    with ProcessPoolExecutor(2) as ex:
        res = list(ex.map(run, jobs))
    for name in dict.fromkeys(r[0] for r in res):
        rows = [r for r in res if r[0] == name]
        t0s = sorted({r[1] for r in rows})
        by = {t: np.array([r[3] for r in sorted(rows, key=lambda r: r[2]) if r[1] == t]) * 100 for t in t0s}
        m, h = paired_ci(by[t0s[1]], by[t0s[0]])
        print(f"{name}: first epoch T={t0s[0]:g}: {by[t0s[0]].mean():.2f} ± {by[t0s[0]].std(ddof=1):.2f}; "
              f"T={t0s[1]:g}: {by[t0s[1]].mean():.2f} ± {by[t0s[1]].std(ddof=1):.2f}; "
              f"paired difference {m:+.2f} ± {h:.2f}")


if __name__ == "__main__":
    main()
