"""Learn a per-token temperature rule for the LM pair by RL across *training* students, then transfer it.

    python benchmarks/lm_token_bandit.py envs/lm.yaml runs/lm-token-policy --episodes 64 --jobs 2
    rltemp distill envs/lm.yaml -T policy:runs/lm-token-policy seed=0

The rule is per token and reads detached features (benchmarks/RESULTS.md: AdaKD's gradient-carrying
temperatures lose; a hand rule on the teacher's confidence wins): T = 1 on average and

    b_i = a_t (p_t,i − 1/2) + a_s (p_s,i − 1/2),   T_i = exp(λ · (b_i − mean_batch b)),   λ = --log-multiplier

with p_t,i / p_s,i the teacher's / student's top-1 probability at token i (features ``p_t_top1``,
``p_s_top1``). PPO (stable-baselines3) chooses a = (a_t, a_s) ∈ [-1, 1]² once per training student
(a contextual bandit, as the shipped image policy's one decision per run), and is rewarded by
100 × (validation CE of that student at T = 1 − its validation CE under the rule): only beating the
constant earns, as with ``env.reward_reference=grid`` on images (the grid chose T = 1 on every LM
student measured). Students: seeds 1000 + i (never the benchmarks' 0..999); the T = 1 references are
run first and kept in OUT/references.json. The exported policy is PPO's mean action, written as an
ordinary rltemp policy (a linear modulator on top of a constant T = 1 schedule) into OUT.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hand_modulator import write  # noqa: E402

FEATURES = ["p_t_top1", "p_s_top1"]


def rule(a: np.ndarray, log_m: float) -> tuple[list[str], list[float], float, float]:
    a = np.clip(np.asarray(a, dtype=np.float64), -1.0, 1.0)
    return FEATURES, [float(a[0]), float(a[1])], -0.5 * float(a[0] + a[1]), log_m


def val_ce(config: str, overrides: list[str], spec: str, seed: int) -> float:
    from rltemp.config import load_config
    from rltemp.kd.pipeline import run_distill

    cfg = load_config(config, [*overrides, f"seed={seed}", "device=cpu"]).with_temperature(spec)
    with tempfile.TemporaryDirectory() as tmp:
        res = run_distill(cfg, out=Path(tmp) / "run", progress=False)
    return float(res["val_loss"])


class TokenRuleEnv(gym.Env):
    """One step = one training student distilled under the rule the action sets; reward its val-CE gain."""

    def __init__(self, config: str, overrides: list[str], seeds: list[int], refs: dict[str, float],
                 log_m: float, log: str) -> None:
        torch.set_num_threads(1)
        self.config, self.overrides, self.seeds, self.refs, self.log_m, self.log = (
            config, overrides, seeds, refs, log_m, log)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.seed_now = seeds[0]

    def reset(self, *, seed: int | None = None, options: dict | None = None):  # noqa: ANN201
        super().reset(seed=seed)
        self.seed_now = int(self.seeds[self.np_random.integers(len(self.seeds))])
        return np.zeros(1, np.float32), {}

    def step(self, action):  # noqa: ANN001, ANN201
        with tempfile.TemporaryDirectory() as tmp:
            d = write(Path(tmp), "rule", rule(action, self.log_m))
            ce = val_ce(self.config, self.overrides, f"policy:{d}", self.seed_now)
        reward = 100.0 * (self.refs[str(self.seed_now)] - ce)
        with open(self.log, "a") as f:
            f.write(json.dumps({"seed": self.seed_now, "action": np.clip(action, -1, 1).tolist(), "val_ce": ce,
                                "reward": reward}) + "\n")
        return np.zeros(1, np.float32), float(reward), True, False, {}


def _ref(args: tuple[str, list[str], int]) -> tuple[int, float]:
    torch.set_num_threads(1)
    config, overrides, seed = args
    return seed, val_ce(config, overrides, "fixed:1", seed)


def main() -> None:
    from multiprocessing import get_context

    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import SubprocVecEnv

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("out", type=Path)
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--students", type=int, default=8, help="training seeds 1000 .. 1000 + N - 1")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--log-multiplier", type=float, default=0.6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=0.03)
    a = ap.parse_intermixed_args()
    a.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seeds = [1000 + i for i in range(a.students)]
    ref_path = a.out / "references.json"
    refs = json.loads(ref_path.read_text()) if ref_path.exists() else {}
    todo = [s for s in seeds if str(s) not in refs]
    if todo:
        with get_context("spawn").Pool(a.jobs) as pool:
            for s, ce in pool.imap_unordered(_ref, [(a.config, a.overrides, s) for s in todo]):
                refs[str(s)] = ce
                print(f"reference seed {s}: val CE {ce:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        ref_path.write_text(json.dumps(refs, indent=2) + "\n")
    log = str(a.out / "episodes.jsonl")
    venv = SubprocVecEnv([lambda i=i: TokenRuleEnv(a.config, a.overrides, seeds, refs, a.log_multiplier, log)
                          for i in range(a.jobs)], start_method="spawn")
    venv.seed(a.seed)
    n_steps = 4
    model = PPO("MlpPolicy", venv, n_steps=n_steps, batch_size=n_steps * a.jobs, n_epochs=10, learning_rate=a.lr,
                gamma=1.0, gae_lambda=1.0, clip_range=0.3, ent_coef=0.0, normalize_advantage=True,
                policy_kwargs={"net_arch": {"pi": [], "vf": []}, "log_std_init": -0.7}, seed=a.seed, verbose=0)

    from stable_baselines3.common.callbacks import BaseCallback

    class Progress(BaseCallback):
        def _on_rollout_end(self) -> None:
            mean = self.model.policy.action_net.bias.detach().numpy()
            std = self.model.policy.log_std.exp().detach().numpy()
            print(f"{self.num_timesteps} episodes: this rollout's mean action {np.round(mean, 3).tolist()} std "
                  f"{np.round(std, 3).tolist()} ({time.perf_counter() - t0:.0f} s)", flush=True)

        def _on_step(self) -> bool:
            return True

    model.learn(total_timesteps=a.episodes, callback=Progress())
    obs = torch.zeros(1, 1)
    mean = model.policy.get_distribution(obs).distribution.mean.detach().numpy()[0]
    venv.close()
    final = rule(mean, a.log_multiplier)
    write(a.out.parent, a.out.name, final, trained_on={
        "learned": "benchmarks/lm_token_bandit.py (PPO, one rule per training student, reward: 100 x val-CE gain "
                   "over T = 1)", "config": a.config, "overrides": a.overrides, "seeds": seeds,
        "episodes": a.episodes, "mean_action": mean.tolist(), "wall_time_s": round(time.perf_counter() - t0)})
    print(f"rule {final}; wrote {a.out} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
