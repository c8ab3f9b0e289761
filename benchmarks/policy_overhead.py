"""Distillation time with a loaded policy, and in online mode, vs. fixed:T — whole runs, side by side.

    python benchmarks/policy_overhead.py [envs/default.yaml] [key=value ...] [--policy default] [--repeats 3]
        [--no-online]

Runs alternate, the order rotated every repeat (fixed:4, policy, online; policy, online, fixed:4;
...) on the same cached teacher and data, one torch thread each (as the bench's cells run); prints
the median wall times (``wall_time_s`` of the run: training and per-epoch validation) and the
ratios policy / fixed:4 (goal ≤ 1.10; the policy's probe, one extra epoch, is inside its run) and
online / fixed:4 (goal ≤ 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.model=cnn2d")
    ap.add_argument("--policy", default="default", help="a shipped policy name or a policy folder")
    ap.add_argument("--agent", default="agents/ppo.yaml", help="the online mode's agent preset")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-online", action="store_true", help="time fixed:4 and the policy only")
    a = ap.parse_intermixed_args()
    torch.set_num_threads(1)
    from rltemp.config import load_config
    from rltemp.experiments.runner import run_method

    base = load_config(a.preset, a.overrides)
    specs = {"fixed:4": "fixed:4", "policy": f"policy:{a.policy}", "online": f"online:{a.agent}"}
    if a.no_online:
        del specs["online"]
    times: dict[str, list[float]] = {k: [] for k in specs}
    with tempfile.TemporaryDirectory() as tmp:
        names = list(specs)
        for r in range(a.repeats):
            k = r % len(names)  # rotate the order: no method always follows online
            for name in names[k:] + names[:k]:
                spec = specs[name]
                res = run_method(base.with_temperature(spec), out=f"{tmp}/{name}-{r}", progress=False)
                times[name].append(res["wall_time_s"])
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.preset} {' '.join(a.overrides)}: {base.distill.epochs} epochs, batch {base.distill.batch_size}, "
          f"{a.repeats} repeats, 1 thread; policy {a.policy}")
    for k, v in med.items():
        print(f"  {k:8s} {v:6.2f} s")
    print(f"ratio policy / fixed:4: {med['policy'] / med['fixed:4']:.3f} (goal <= 1.10, probe included)")
    if "online" in med:
        print(f"ratio online / fixed:4: {med['online'] / med['fixed:4']:.3f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
