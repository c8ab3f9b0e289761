"""Environment overhead against the plain Distiller, side by side in one process.

    python benchmarks/env_overhead.py [envs/default.yaml] [key=value ...] [--epochs 6] [--repeats 3]

``rltemp/KDInstanceEpoch-v0`` (online mode's env: a temperature per training instance, decided once
per epoch): ``--epochs`` env steps at a constant action vs. the same number of plain
``Distiller.run_epoch()`` calls (training plus the per-epoch validation that both do) at the same T;
the env adds the epoch's features over the training split, the per-instance credit (one batched
product) and the validation gradient. (Run with ``env.base_policy=`` so that the action is the
temperature.) The run-level env's cost is its probe: ``benchmarks/policy_overhead.py`` measures it.

Runs alternate (env, plain, env, ...) so machine noise hits both; prints medians and the ratios
(goal: ≤ 1.10 for the default pair).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.model=cnn2d")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_intermixed_args()
    torch.set_num_threads(a.threads)
    from rltemp.config import load_config
    from rltemp.envs.instance_epoch_env import KDInstanceEpochEnv
    from rltemp.kd.forms import temperature_to_action
    from rltemp.kd.pipeline import build_student_model
    from rltemp.kd.strategies import StrategyContext, build_strategy
    from rltemp.kd.trainer import Distiller

    cfg = load_config(a.preset, [*a.overrides, "env.reward_reference=", "env.base_policy="])
    epoch_env = KDInstanceEpochEnv(cfg)
    data, teacher, device = epoch_env.data, epoch_env.teacher, epoch_env.device

    def plain() -> Distiller:
        return Distiller(cfg.distill, data, build_student_model(cfg, data, 0), teacher,
                         build_strategy("fixed:4", StrategyContext(data.num_classes, cfg.distill.epochs)),
                         seed=0, device=device)

    a_epoch = np.full(epoch_env.action_space.shape, temperature_to_action(4.0, cfg.env.t_min, cfg.env.t_max),
                      np.float32)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {k: [] for k in ("plain epochs", "instance-epoch env")}

    def timed(key: str, run: Callable[[], None]) -> None:
        sync()
        t0 = time.perf_counter()
        run()
        sync()
        times[key].append(time.perf_counter() - t0)

    def epochs(step: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            for _ in range(a.epochs):
                step()
        return run

    for _ in range(a.repeats):
        timed("plain epochs", epochs(plain().run_epoch))
        epoch_env.reset(seed=0, options={"student_seed": 0})
        timed("instance-epoch env", epochs(lambda: epoch_env.step(a_epoch)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.preset} {' '.join(a.overrides)}: student {cfg.student.model} {cfg.student.options}, batch "
          f"{cfg.distill.batch_size}, {a.threads} thread(s), device {device}, median of {a.repeats}")
    print(f"  instance-epoch env: {a.epochs} epochs {med['instance-epoch env']:.3f} s vs plain "
          f"{med['plain epochs']:.3f} s: ratio {med['instance-epoch env'] / med['plain epochs']:.3f} "
          f"({len(epoch_env.features)} features over {epoch_env.n} instances, influence credit)")

if __name__ == "__main__":
    main()
