"""``rltemp quickstart``: the whole story on the built-in default, in minutes on a laptop CPU.

1. the teacher (cached after the first run); 2. a temperature policy trained with PPO for a small
budget on students with seeds >= 1000; 3. fresh students on held-out seeds 0..n-1 — the training
architecture and one the policy never saw — distilled with the frozen policy and with fixed:4, the
best of fixed:{1,2,4,8} chosen per seed on *validation* ("grid"), a cooling schedule, ls, ctkd,
dtkd and plain CE; 4. a table of last-epoch test accuracy (mean ± std over seeds), the paired
difference policy − grid, wall time per run, and the policy's training cost; TensorBoard folder.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from rltemp.agents.config import load_agent
from rltemp.agents.parallel import distill_many, iter_progress
from rltemp.agents.train import train_policy
from rltemp.config import ModelConfig, load_config
from rltemp.kd.pipeline import get_teacher, prepare
from rltemp.paths import atomic_write_bytes
from rltemp.stats import mean_std, paired_ci

GRID = ["fixed:1", "fixed:2", "fixed:4", "fixed:8"]
BASELINES = ["anneal:4,2,cosine", "ls", "ctkd", "dtkd", "ce"]
UNSEEN_STUDENT = ModelConfig("mlp", {"width": 128, "depth": 2})
QUICK_EPISODES = 8

def grid_pick(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The fixed-T run with the best last-epoch validation accuracy (never the test split)."""
    return max(rows, key=lambda r: r["val_acc"])


def quickstart(config: str = "envs/default.yaml", agent_path: str = "agents/ppo.yaml", seeds: int = 3,
               episodes: int | None = None, jobs: int = 2, out: str | None = None, progress: bool = True) -> dict:
    t_start = time.perf_counter()
    out_dir = Path(out or f"runs/quickstart-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = load_config(config, ["device=cpu"])
    say = print

    say(f"[1/4] teacher for {config} (cached after the first run)")
    data, device, _ = prepare(cfg)
    t0 = time.perf_counter()
    get_teacher(cfg, data, device, progress)
    say(f"      ready in {time.perf_counter() - t0:.1f}s")

    agent = load_agent(agent_path, [f"agent.episodes={episodes or QUICK_EPISODES}"])
    say(f"[2/4] training a {agent.algo.upper()} temperature policy: {agent.episodes} episodes of "
        f"{cfg.distill.epochs}-epoch student runs (student seeds >= 1000)")
    pol_dir = out_dir / "policy"
    if (pol_dir / "results.json").exists():
        pol = json.loads((pol_dir / "results.json").read_text())
        say("      reusing the policy already trained in this folder")
    else:
        pol = train_policy(cfg, agent, out=pol_dir, progress=progress)
    say(f"      {pol['kd_steps']} KD steps in {pol['wall_time_s']:.1f}s")

    pairs = {"seen": cfg, "unseen": cfg.replace(student=UNSEEN_STUDENT)}
    methods = {"seen": [f"policy:{pol_dir}", *GRID, *BASELINES], "unseen": [f"policy:{pol_dir}", *GRID, "ce"]}
    cells, keys = [], []
    for pair, base in pairs.items():
        for m in methods[pair]:
            for s in range(seeds):
                c = base.with_temperature(m, seed=s)
                name = m.split(":")[0] if m.startswith("policy:") else m.replace(":", "").replace(",", "-")
                cells.append((c, out_dir / "runs" / pair / f"{name}-s{s}"))
                keys.append((pair, m, s))
    say(f"[3/4] distilling {len(cells)} fresh students on held-out seeds 0..{seeds - 1} ({jobs} processes)")
    bar = iter_progress(len(cells), "distill", progress)
    res = distill_many(cells, jobs, on_done=lambda i, r: bar.update(1))
    bar.close()

    say("[4/4] results: last-epoch test accuracy %, mean ± std over seeds (selection on validation only)\n")
    table = {}
    lines = []
    for pair in pairs:
        by: dict[str, list[dict[str, Any]]] = {}
        for (p, m, _s), r in zip(keys, res, strict=True):
            if p == pair:
                by.setdefault("policy" if m.startswith("policy:") else m, []).append(r)
        by["grid (best T on val)"] = [grid_pick([by[g][s] for g in GRID]) for s in range(seeds)]
        grid_wall = [sum(by[g][s]["wall_time_s"] for g in GRID) for s in range(seeds)]
        student = pairs[pair].student
        title = f"{student.model} {student.options} ({'the policy trained on it' if pair == 'seen' else 'unseen by the policy'})"
        lines += [f"### {title}", "", "| method | test acc % | val acc % | wall s / run | Δ vs grid (95% CI) |",
                  "|---|---|---|---|---|"]
        order = ["policy", "grid (best T on val)", *GRID, *[b for b in BASELINES if b in by]]
        grid_acc = [100 * r["test_acc"] for r in by["grid (best T on val)"]]
        table[pair] = {}
        for m in order:
            rows = by[m]
            acc = [100 * r["test_acc"] for r in rows]
            tm, ts = mean_std(acc)
            vm, vs = mean_std([100 * r["val_acc"] for r in rows])
            wall = statistics.mean(grid_wall) if m.startswith("grid") else statistics.mean(r["wall_time_s"] for r in rows)
            d, h = paired_ci(acc, grid_acc)
            delta = "" if m.startswith("grid") else f"{d:+.2f} ± {h:.2f}"
            lines.append(f"| {m} | {tm:.2f} ± {ts:.2f} | {vm:.2f} ± {vs:.2f} | {wall:.1f} | {delta} |")
            table[pair][m] = {"test_acc": acc, "mean": tm, "std": ts, "wall_s": wall}
        picks = [r["method"] for r in by["grid (best T on val)"]]
        lines += ["", f"grid picks per seed: {', '.join(picks)}; grid wall = its four runs.", ""]
    total = time.perf_counter() - t_start
    lines += [f"Policy training cost: {pol['kd_steps']} KD steps, {pol['wall_time_s']:.1f}s "
              f"({agent.episodes} episodes) — a one-off, amortised over every student it is used on.",
              f"Total quickstart wall time: {total:.0f}s."]
    text = "\n".join(lines)
    say(text)
    atomic_write_bytes(out_dir / "summary.md", (text + "\n").encode())
    atomic_write_bytes(out_dir / "results.json", (json.dumps({"table": table, "policy": pol, "wall_time_s": total},
                                                             indent=2, default=str) + "\n").encode())
    say(f"\nSee why the policy chose what it chose:\n  tensorboard --logdir {out_dir}")
    return table
