"""``rltemp quickstart``: the whole story on the built-in default, in minutes on a laptop CPU.

A small benchmark suite run by the bench machinery (:mod:`rltemp.experiments.bench`):
1. the teacher (cached after the first run); 2. a short fresh PPO training of a temperature policy
on students with seeds >= 1000 (the RL loop at work; ``--episodes``); 3. fresh students on
held-out seeds 0..n-1 — the training architecture ("seen") and one no policy saw ("unseen") —
distilled with the shipped policy (``policy:default``, zero training here), the fresh one, the best
of fixed:{1,2,4,8} chosen per seed on *validation* ("grid"), each fixed T, two cooling schedules,
ls, ctkd, dtkd and plain CE; 4. the table (last-epoch test accuracy, paired differences to the
grid and to the best hand schedule with 95 % t intervals, wall time per run, training cost) and the
TensorBoard dashboard.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rltemp.experiments.bench import GRID, PairSpec, PolicySpec, Suite, check_suite, run_suite, summary_lines

SHIPPED = "policy:default"
DASHBOARD_URL = "http://localhost:6006/#custom_scalars&_smoothingWeight=0&regexInput=s0%24%7Ctraining"
BASELINES = ["anneal:6,1,linear", "anneal:4,2,cosine", "ls", "ctkd", "dtkd", "ce"]
UNSEEN_STUDENT = ["student.model=mlp", "student.options={width: 128, depth: 2}"]
QUICK_EPISODES = 32


def quickstart_suite(config: str, agent: str, seeds: int, episodes: int) -> Suite:
    fresh = ["policy"] if episodes > 0 else []
    return Suite(
        name="quickstart",
        seeds=list(range(seeds)),
        pairs=[PairSpec("seen", config, [], [SHIPPED, *fresh, "grid", *GRID, *BASELINES]),
               PairSpec("unseen", config, UNSEEN_STUDENT, [SHIPPED, "grid", *GRID, "anneal:6,1,linear", "ce"])],
        policy=PolicySpec(agent, [f"agent.episodes={max(episodes, 1)}"], train_on="seen"),
        references=["grid", "anneal:6,1,linear"],
    )


def quickstart(config: str = "envs/default.yaml", agent: str = "agents/ppo.yaml", seeds: int = 3,
               episodes: int | None = None, jobs: int = 2, out: str | None = None, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out_dir = Path(out or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    episodes = QUICK_EPISODES if episodes is None else episodes
    suite = check_suite(quickstart_suite(config, agent, seeds, episodes), "quickstart")
    print(f"rltemp quickstart -> {out_dir}: the teacher (cached after the first run)"
          + (f", a fresh policy trained for {episodes} episodes on {suite.pairs[0].name} students (seeds >= 1000)"
             if episodes > 0 else "")
          + f", then fresh students on held-out seeds 0..{seeds - 1} with the shipped policy ({SHIPPED}), "
          "the grid, hand schedules and the classic methods")
    res = run_suite(suite, out_dir, jobs, progress, say=lambda m: print(f"  {m}"))
    total = time.perf_counter() - t0
    lines = summary_lines(suite, res["rows"], res["policy"])
    pol = res["policy"].get("seen")
    if pol:
        lines.append(f"`policy` = a fresh policy trained here: {pol['kd_steps']} KD steps, {pol['wall_time_s']:.1f}s "
                     f"({pol['episodes']} episodes; the shipped one had {_shipped_episodes()}).")
    lines.append(f"Total quickstart wall time: {total:.0f}s.")
    print("\n" + "\n".join(lines))
    print(f"\nSee how hot, for whom and when:\n  tensorboard --logdir {out_dir}\nthen open {DASHBOARD_URL}\n"
          "(the CUSTOM SCALARS tab, filtered to seed 0 of every method and the policy training: TensorBoard "
          "selects runs by default only up to 40)")
    return {**res, "wall_time_s": total}


def _shipped_episodes() -> str:
    import json

    from rltemp.kd.policy import resolve_policy

    try:
        meta = json.loads(resolve_policy(SHIPPED.split(":", 1)[1]).read_text())
        return f"{meta['trained_on']['episodes']} episodes, {meta['trained_on']['wall_time_s']:.0f}s"
    except Exception:  # noqa: BLE001
        return "an unknown budget"
