"""Environment overhead: N env steps at a constant action vs. N plain Distiller steps at the same T.

    python benchmarks/env_overhead.py [envs/default.yaml] [--steps 600] [--repeats 3]

Both run in this process on the same data and cached teacher, alternating (env, plain, env, ...)
so machine noise hits both; prints the median times and their ratio (goal <= 1.10). The env
includes its observation features, its validation-subset rewards every ``env.reward_interval``
steps and the per-epoch validation that the plain loop does too.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.model=cnn2d")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_intermixed_args()
    from rltemp.config import load_config
    from rltemp.envs.kd_env import KDTemperatureEnv, temperature_to_action
    from rltemp.kd.pipeline import build_student_model
    from rltemp.kd.strategies import StrategyContext, build_strategy
    from rltemp.kd.trainer import Distiller

    cfg = load_config(a.preset, a.overrides)
    env = KDTemperatureEnv(cfg)
    act = np.full(env.action_space.shape, temperature_to_action(4.0, cfg.env.t_min, cfg.env.t_max), np.float32)
    times: dict[str, list[float]] = {"env": [], "plain": []}
    for _ in range(a.repeats):
        env.reset(seed=0, options={"student_seed": 0})
        t0 = time.perf_counter()
        for _ in range(a.steps):
            if env.step(act)[3]:
                env.reset(seed=0, options={"student_seed": 0})
        times["env"].append(time.perf_counter() - t0)

        d = Distiller(cfg.distill, env.data, build_student_model(cfg, env.data, 0), env.teacher,
                      build_strategy("fixed:4", StrategyContext(env.data.num_classes, cfg.distill.epochs)),
                      seed=0, device=env.device)
        t0 = time.perf_counter()
        n = 0
        while n < a.steps:
            for x, y, idx in d.epoch_batches():
                d.train_step(x, y, idx)
                n += 1
                if n == a.steps:
                    break
            else:
                d.end_epoch()
        times["plain"].append(time.perf_counter() - t0)
    e, p = statistics.median(times["env"]), statistics.median(times["plain"])
    print(f"{a.preset}: {a.steps} steps, batch {cfg.distill.batch_size}, reward_interval {cfg.env.reward_interval}, "
          f"val_subset {cfg.env.val_subset}, {len(env.features)} features")
    print(f"env steps:   {e:.3f} s ({1e3 * e / a.steps:.2f} ms/step)")
    print(f"plain steps: {p:.3f} s ({1e3 * p / a.steps:.2f} ms/step)")
    print(f"ratio env / plain: {e / p:.3f}")


if __name__ == "__main__":
    main()
