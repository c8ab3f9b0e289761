"""Probe: can a policy with *one* decision per run learn a schedule that depends on the student?

Ablations T-Y and the privileged-actor diagnostics (RESULTS) found that the per-epoch schedule
policy — 30 Gaussian decisions per run, each credited with the run's whole return — learns one
schedule for a pool of fast and slow students even when its actor is handed what tells them apart.
This probe asks whether fewer, larger decisions fix that: after a first epoch at T0 = 4 (the
reference's temperature), the policy observes the validation accuracy and picks a whole schedule
for the remaining epochs, T from T_start to T_end geometrically (two action numbers on the
schedule env's log scale), and gets the run's whole gain over the reference as one reward (a
contextual bandit; SB3's PPO with one-step episodes). Same environment, students, seeds and
reward as ``rltemp train-policy``; not a policy format rltemp ships — a probe, read its printout.

    python benchmarks/schedule_bandit.py envs/default.yaml \\
        "env.students=[{model: mlp, options: {width: 256, depth: 1}}, {model: mlp, options: {width: 256, depth: 1}, lr: 0.0003}]" \\
        --episodes 240 --jobs 2 \\
        --evaluate benchmarks/suites/student-pool.yaml --against runs/bench-pool3/results.json

``--evaluate`` then runs the deterministic policy on a suite's pairs and seeds (held out) and
pairs it with a finished bench's grid and ``anneal:6,1,linear`` cells — the results.json of
``rltemp bench benchmarks/suites/student-pool.yaml --jobs 2 --out runs/bench-pool3`` (RESULTS has the numbers).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np


class ScheduleBandit(gym.Env):
    """One decision per student run on top of ``rltemp/KDSchedule-v0`` (see the module doc)."""

    def __init__(self, raw: dict[str, Any], seeds: list[int], t0: float = 4.0) -> None:
        from rltemp.agents.train import _schedule_env_factory
        from rltemp.kd.policy import temperature_to_action

        self.env = _schedule_env_factory(raw, seeds, worker=True)()  # as a train-policy worker: one thread
        e = self.env.ecfg
        self.a0 = temperature_to_action(t0, e.t_min, e.t_max)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        self.env.reset(seed=seed, options=options)
        _, self.r0, _, _, info = self.env.step(np.array([self.a0], np.float32))
        self.first_acc = info["val_acc"]
        return np.array([self.first_acc], np.float32), info

    def step(self, action: Any):  # noqa: ANN201
        a = np.clip(np.asarray(action, np.float32).reshape(2), -1.0, 1.0)
        epochs = self.env.cfg.distill.epochs
        total, temps = self.r0, []
        for k in range(1, epochs):
            frac = (k - 1) / max(epochs - 2, 1)
            _, r, _, _, info = self.env.step(np.array([a[0] + (a[1] - a[0]) * frac], np.float32))
            total += r
            temps.append(info["temperature"])
        info = {**info, "t_start": temps[0], "t_end": temps[-1], "return": total,
                "student_index": self.env.student_index, "first_acc": self.first_acc}
        return np.array([info["val_acc"]], np.float32), float(total), True, False, info


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset")
    ap.add_argument("overrides", nargs="*", metavar="key=value")
    ap.add_argument("--episodes", type=int, default=240)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--evaluate", metavar="SUITE", help="afterwards, run the deterministic policy on this bench "
                    "suite's pairs and seeds and compare it, paired by seed, with --against's cells")
    ap.add_argument("--against", metavar="RESULTS_JSON", help="a finished bench's results.json (same suite)")
    a = ap.parse_intermixed_args()
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecNormalize

    from rltemp.agents.train import seed_slices
    from rltemp.config import load_config
    from rltemp.kd.pipeline import get_teacher, prepare

    cfg = load_config(a.preset, a.overrides)
    data, device, _ = prepare(cfg.with_temperature("ce"))
    get_teacher(cfg, data, device, False)
    raw = cfg.to_dict()
    venv = SubprocVecEnv([lambda s=s: ScheduleBandit(raw, s) for s in seed_slices(cfg, a.jobs)], start_method="spawn")
    venv = VecNormalize(venv, norm_obs=True, norm_reward=False)
    venv.seed(cfg.seed)
    log: list[dict[str, Any]] = []
    kinds = range(max(len(cfg.env.students), 1))

    class Record(BaseCallback):
        def _on_step(self) -> bool:
            for info in self.locals["infos"]:
                log.append({k: info[k] for k in ("student_index", "t_start", "t_end", "return", "first_acc")})
                if len(log) % 20 == 0:
                    recent = log[-40:]
                    by = {k: [r for r in recent if r["student_index"] == k] for k in kinds}
                    print(f"episode {len(log)}: " + "; ".join(
                        f"student {k}: T {np.mean([r['t_start'] for r in v]):.2f} -> {np.mean([r['t_end'] for r in v]):.2f}, "
                        f"return {np.mean([r['return'] for r in v]):+.2f}" for k, v in by.items() if v), flush=True)
            return True

    torch.manual_seed(cfg.seed)
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=4 * a.jobs, n_epochs=10, learning_rate=a.lr, gamma=1.0,
                gae_lambda=1.0, clip_range=0.3, ent_coef=0.0, seed=cfg.seed, device="cpu", verbose=0,
                policy_kwargs={"net_arch": [32, 32], "log_std_init": -0.7})
    t = time.perf_counter()
    model.learn(total_timesteps=a.episodes, callback=Record())
    wall = time.perf_counter() - t
    # the deterministic choice at each kind's mean first-epoch accuracy (its last 40 episodes)
    from rltemp.kd.policy import action_to_temperature

    print(f"{len(log)} episodes, {wall:.0f} s. Deterministic schedule at each student's mean first-epoch accuracy:")
    for k in kinds:
        rows = [r for r in log if r["student_index"] == k][-40:]
        if rows:
            acc = float(np.mean([r["first_acc"] for r in rows]))
            act, _ = model.predict(venv.normalize_obs(np.array([[acc]], np.float32)), deterministic=True)
            t = action_to_temperature(torch.as_tensor(act[0]), cfg.env.t_min, cfg.env.t_max).tolist()
            print(f"student {k}: first-epoch val acc {acc:.3f} -> T {t[0]:.2f} -> {t[1]:.2f}; "
                  f"mean return of its last {len(rows)} episodes {np.mean([r['return'] for r in rows]):+.2f}")
    venv.close()
    if a.evaluate:
        evaluate_on_suite(model, venv, a.evaluate, a.against)


def evaluate_on_suite(model: Any, venv: Any, suite_path: str, against: str | None) -> None:
    """Held-out check: the deterministic policy on every pair and seed of a bench suite (the same
    Distiller and seed as ``rltemp distill``; last-epoch test accuracy), paired with the bench's
    grid and ``anneal:6,1,linear`` cells for the same seeds."""
    import json
    from pathlib import Path

    from rltemp.config import load_config
    from rltemp.experiments.bench import load_suite
    from rltemp.experiments.stats import paired_ci
    from rltemp.kd.trainer import evaluate

    suite = load_suite(suite_path)
    rows = json.loads(Path(against).read_text()) if against else []
    print(f"held-out: the deterministic policy on {suite_path} (seeds {list(suite.seeds)})")
    for pair in suite.pairs:
        cfg = load_config(pair.config, [*pair.overrides, "env.reward_reference=", "env.students=[]"])
        env = ScheduleBandit(cfg.to_dict(), [])
        accs = []
        for seed in suite.seeds:
            obs, _ = env.reset(options={"student_seed": int(seed), "student": 0})
            act, _ = model.predict(venv.normalize_obs(obs[None]), deterministic=True)
            _, _, _, _, info = env.step(act[0])
            d = env.env.distiller
            accs.append(evaluate(d.student, d.data.test, d.data)[0] * 100)
        line = f"{pair.name}: {np.mean(accs):.2f} ± {np.std(accs, ddof=1):.2f} (T {info['t_start']:.2f} -> {info['t_end']:.2f} on the last seed)"
        for ref in ("grid", "anneal:6,1,linear"):
            by_seed = {r["seed"]: r["test_acc"] * 100 for r in rows if r["pair"] == pair.name and r["method"] == ref}
            if all(sd in by_seed for sd in suite.seeds):
                m, h = paired_ci(accs, [by_seed[sd] for sd in suite.seeds])
                line += f"; vs {ref} {m:+.2f} ± {h:.2f}{' *' if abs(m) > h else ''}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
