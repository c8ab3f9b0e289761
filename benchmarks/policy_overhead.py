"""Distillation time with a loaded policy, and in online mode, vs. fixed:T — measured in one process.

    python benchmarks/policy_overhead.py [envs/default.yaml] [--policy RUN_DIR] [--repeats 3]

Without ``--policy`` a 1-episode PPO policy is trained first (its quality does not matter here).
Runs alternate (fixed, policy, online, fixed, ...) on the same cached teacher and data; prints the
median wall times and the ratios policy/fixed (goal <= 1.03) and online/fixed (goal <= 1.2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("preset", nargs="?", default="envs/default.yaml")
    ap.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. student.model=cnn2d")
    ap.add_argument("--policy", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--agent", default="agents/ppo.yaml")
    a = ap.parse_intermixed_args()
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import run_online, train_policy
    from rltemp.config import load_config
    from rltemp.kd.pipeline import run_distill

    base = load_config(a.preset, a.overrides)
    with tempfile.TemporaryDirectory() as tmp:
        policy = a.policy
        if policy is None:
            policy = f"{tmp}/policy"
            train_policy(base, load_agent(a.agent, ["agent.episodes=1"]), out=policy, progress=False)
        agent = load_agent(a.agent)
        times: dict[str, list[float]] = {"fixed:4": [], "policy": [], "online": []}
        for r in range(a.repeats):
            for name in times:
                t0 = time.perf_counter()
                if name == "online":
                    cfg = base.with_temperature(f"online:{a.agent}")
                    run_online(cfg, agent, out=f"{tmp}/{name}-{r}", progress=False)
                else:
                    spec = "fixed:4" if name == "fixed:4" else f"policy:{policy}"
                    cfg = base.with_temperature(spec)
                    run_distill(cfg, out=f"{tmp}/{name}-{r}", progress=False)
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{a.preset}: {base.distill.epochs} epochs, batch {base.distill.batch_size}, {a.repeats} repeats "
          "(whole runs incl. evaluation and run-folder writes)")
    for k, v in med.items():
        print(f"  {k:8s} {v:6.2f} s")
    print(f"ratio policy / fixed:4: {med['policy'] / med['fixed:4']:.3f}")
    print(f"ratio online / fixed:4: {med['online'] / med['fixed:4']:.3f}")


if __name__ == "__main__":
    main()
