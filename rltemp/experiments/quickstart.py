"""``rltemp quickstart``: the whole story on the built-in default, in minutes on a laptop CPU.

A small benchmark suite run by the bench machinery (:mod:`rltemp.experiments.bench`):
1. the teacher (cached after the first run); 2. a temperature policy trained for a small budget on
students with seeds >= 1000; 3. fresh students on held-out seeds 0..n-1 — the training
architecture ("seen") and one the policy never saw ("unseen") — distilled with the frozen policy
and with the best of fixed:{1,2,4,8} chosen per seed on *validation* ("grid"), each fixed T, a
cooling schedule, ls, ctkd, dtkd and plain CE; 4. the table (last-epoch test accuracy, paired
differences to the grid with 95 % t intervals, wall time per run, the policy's training cost) and
the TensorBoard folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rltemp.experiments.bench import GRID, PairSpec, PolicySpec, Suite, check_suite, run_suite, summary_lines

BASELINES = ["anneal:4,2,cosine", "ls", "ctkd", "dtkd", "ce"]
UNSEEN_STUDENT = ["student.model=mlp", "student.options={width: 128, depth: 2}"]
QUICK_EPISODES = 8


def quickstart_suite(config: str, agent: str, seeds: int, episodes: int) -> Suite:
    return Suite(
        name="quickstart",
        seeds=list(range(seeds)),
        pairs=[PairSpec("seen", config, [], ["policy", "grid", *GRID, *BASELINES]),
               PairSpec("unseen", config, UNSEEN_STUDENT, ["policy", "grid", *GRID, "ce"])],
        policy=PolicySpec(agent, [f"agent.episodes={episodes}"], train_on="seen"),
        references=["grid"],
    )


def quickstart(config: str = "envs/default.yaml", agent: str = "agents/ppo.yaml", seeds: int = 3,
               episodes: int | None = None, jobs: int = 2, out: str | None = None, progress: bool = True) -> dict[str, Any]:
    t0 = time.perf_counter()
    out_dir = Path(out or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    suite = check_suite(quickstart_suite(config, agent, seeds, episodes or QUICK_EPISODES), "quickstart")
    print(f"rltemp quickstart -> {out_dir}: teacher (cached after the first run), a policy trained on "
          f"{suite.pairs[0].name} students (seeds >= 1000), then fresh students on held-out seeds 0..{seeds - 1}")
    res = run_suite(suite, out_dir, jobs, progress, say=lambda m: print(f"  {m}"))
    pol = res["policy"]["seen"]
    total = time.perf_counter() - t0
    lines = summary_lines(suite, res["rows"], res["policy"])
    lines += [f"Policy training cost: {pol['kd_steps']} KD steps, {pol['wall_time_s']:.1f}s "
              f"({pol['episodes']} episodes) — a one-off, amortised over every student it is used on.",
              f"Total quickstart wall time: {total:.0f}s."]
    print("\n" + "\n".join(lines))
    print(f"\nSee why the policy chose what it chose:\n  tensorboard --logdir {out_dir}")
    return {**res, "wall_time_s": total}
