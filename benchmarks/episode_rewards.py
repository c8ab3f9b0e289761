"""A random-action agent and a constant-action agent each run one full episode of the environment.

    python benchmarks/episode_rewards.py [envs/default.yaml] [--temperature 4]

For each agent it prints the summed reward and 100 x (final - initial) validation-subset signal
(accuracy or -loss, as ``env.reward`` says; they must be equal: rewards telescope), the mean temperature, the student's final test accuracy
(measured here by the script, never by the environment) and the episode's wall time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. env.reward=val_acc")
    a = ap.parse_intermixed_args()
    from rltemp.config import load_config
    from rltemp.envs.kd_env import KDTemperatureEnv
    from rltemp.envs.rewards import REWARDS
    from rltemp.kd.policy import temperature_to_action
    from rltemp.kd.trainer import evaluate

    env = KDTemperatureEnv(load_config(a.preset, a.overrides))
    rng = np.random.default_rng(a.seed)
    const = np.full(env.action_space.shape, temperature_to_action(a.temperature, env.ecfg.t_min, env.ecfg.t_max),
                    np.float32)
    agents = {
        "random": lambda: rng.uniform(-1, 1, env.action_space.shape).astype(np.float32),
        f"constant T={a.temperature:g}": lambda: const,
    }
    for name, act in agents.items():
        env.reset(seed=a.seed, options={"student_seed": a.seed})
        t0 = time.perf_counter()
        total, temps, done, info = 0.0, [], False, {}
        while not done:
            _, r, term, trunc, info = env.step(act())
            total += r
            temps.append(info["temperature"].mean())
            done = term or trunc
        final = REWARDS.get(env.ecfg.reward)(info["val_acc"], info["val_loss"])
        gain = env.ecfg.reward_scale * (final - env.initial_signal)
        test_acc, _ = evaluate(env.distiller.student, env.data.test, env.data)
        print(f"{name:16s} summed reward {total:+.4f} = 100 x (final - initial) {env.ecfg.reward} {gain:+.4f}; "
              f"mean T {np.mean(temps):.2f}; test acc {test_acc:.4f}; {env.distiller.step_count} steps in "
              f"{time.perf_counter() - t0:.1f}s")
        assert abs(total - gain) < 1e-6 * max(1.0, abs(gain))


if __name__ == "__main__":
    main()
