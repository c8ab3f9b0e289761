"""Distillation time with a loaded policy, and in online mode, vs. fixed:T — whole runs, side by side.

    python benchmarks/policy_overhead.py [envs/default.yaml] [key=value ...] [--policy default] [--repeats 3]
        [--no-online]

Runs alternate, the order rotated every repeat (fixed:4, policy, online; policy, online, fixed:4;
...) on the same cached teacher and data, one torch thread each (as the bench's cells run); prints
the median wall times (``wall_time_s`` of the run: training and per-epoch validation) and the
ratios policy / fixed:4 (goal ≤ 1.10; the policy's probe, one extra epoch, is inside its run) and
online / fixed:4 (goal ≤ 1.2).

``--interleave`` times one fixed:4 run and one policy run in this process, epoch by epoch in turn
(the order swapped every epoch), each with its own Distiller and TensorBoard logger as ``rltemp
distill`` builds them: every epoch's training, validation and logging (the policy's decision and
figures included) is timed, and the machine's drift over minutes, which moves whole runs by several
per cent, falls on both alike. Prints both runs' summed epoch times and their ratio.
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
    ap.add_argument("--interleave", action="store_true",
                    help="fixed:4 and the policy, epoch by epoch in one process (no online mode)")
    a = ap.parse_intermixed_args()
    torch.set_num_threads(1)
    from rltemp.config import load_config
    from rltemp.experiments.runner import run_method

    base = load_config(a.preset, a.overrides)
    if a.interleave:
        return interleaved(base, f"policy:{a.policy}")
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


def interleaved(base, policy_spec: str) -> None:  # noqa: ANN001
    import time

    from torch.utils.tensorboard import SummaryWriter

    from rltemp.kd.pipeline import EpochLogger, build_student_model, get_teacher, logged_epoch, prepare_data
    from rltemp.kd.strategies import StrategyContext, build_strategy
    from rltemp.kd.trainer import Distiller

    cfg0 = base.with_temperature("fixed:4")
    data, device = prepare_data(cfg0)
    teacher = get_teacher(cfg0, data, device, progress=False)
    tokens = data.test.y.dim() == 2
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in (("fixed:4", "fixed:4"), ("policy", policy_spec)):
            cfg = base.with_temperature(spec)
            strategy = build_strategy(spec, StrategyContext(data.num_classes, cfg.distill.epochs))
            d = Distiller(cfg.distill, data, build_student_model(cfg, data, cfg.seed), teacher, strategy,
                          seed=cfg.seed, device=device)
            runs[name] = (d, EpochLogger.for_run(SummaryWriter(f"{tmp}/{name}"), cfg, tokens))
        total = {k: 0.0 for k in runs}
        for e in range(base.distill.epochs):
            for name in list(runs)[:: 1 if e % 2 == 0 else -1]:
                d, log = runs[name]
                t0 = time.perf_counter()
                logged_epoch(d, log)
                total[name] += time.perf_counter() - t0
        for _, log in runs.values():
            log.writer.close()
    print(f"{base.name}: {base.distill.epochs} epochs, batch {base.distill.batch_size}, 1 thread, "
          f"interleaved epoch by epoch; policy {policy_spec}")
    for k, v in total.items():
        print(f"  {k:8s} {v:6.2f} s (training, validation and logging)")
    print(f"ratio policy / fixed:4: {total['policy'] / total['fixed:4']:.3f}")


if __name__ == "__main__":
    main()
