"""``rltemp bench SUITE``: every (pair, method, seed) cell of a suite, resumable, with honest summaries.

A suite (YAML) lists teacher/student pairs (a preset plus overrides), methods (any temperature SPEC;
``grid`` = the best of ``fixed:{1,2,4,8}`` chosen per seed on validation; ``policy`` = a policy
trained once per pair by the ``policy:`` section, then transferred; ``online:AGENT``), and seeds.

Each cell runs into ``OUT/<pair>/<method>/s<seed>/`` and counts only once its ``results.json``
exists (written last, atomically), so a second invocation redoes nothing, and a cell whose process
was killed or failed is simply run again next time; failed cells are reported, never counted.

Outputs: ``results.csv`` / ``results.json`` (one row per cell, ``grid`` rows derived from their four
runs), ``summary.md`` (per pair: mean ± std, paired differences against ``fixed:4`` and ``grid``
with 95 % t intervals over the same seeds, wall-time cost columns and the cost accounting),
``accuracy.png`` (accuracy per method with one dot per seed) and TensorBoard hparams in ``tb/``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltemp.config import Config, _build, load_config, read_yaml
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.strategies import StrategyContext, build_strategy
from rltemp.paths import atomic_write_bytes
from rltemp.runs import read_results
from rltemp.stats import mean_std, paired_ci

log = logging.getLogger(__name__)
GRID = ["fixed:1", "fixed:2", "fixed:4", "fixed:8"]


@dataclass(frozen=True)
class PairSpec:
    name: str = ""
    config: str = "envs/default.yaml"
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PolicySpec:
    agent: str = "agents/ppo.yaml"
    overrides: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Suite:
    name: str = "suite"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    pairs: list[PairSpec] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    policy: PolicySpec = field(default_factory=PolicySpec)


def slug(method: str) -> str:
    return method.replace(":", "_").replace(",", "-").replace("/", "-").replace(".yaml", "")


def load_suite(path: str | Path) -> Suite:
    suite = _build(Suite, read_yaml(path), "suite")
    if not suite.pairs or not suite.methods or not suite.seeds:
        raise ConfigError(f"{path}: a suite needs pairs, methods and seeds")
    names = [p.name for p in suite.pairs]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"{path}: every pair needs a distinct name")
    for p in suite.pairs:  # fail now on bad presets / overrides / method SPECs
        cfg = load_config(p.config, p.overrides)
        for m in suite.methods:
            if m in ("grid", "policy") or m.startswith("online:"):
                continue
            build_strategy(m, StrategyContext(100, cfg.distill.epochs))
    return suite


def _cell_methods(methods: list[str]) -> list[str]:
    """The runs behind the methods: ``grid`` expands to its four fixed-T runs (shared with fixed:4)."""
    out: list[str] = []
    for m in methods:
        for r in GRID if m == "grid" else [m]:
            if r not in out:
                out.append(r)
    return out


def run_bench(suite_path: str | Path, out: str | Path, jobs: int = 2, progress: bool = True) -> dict[str, Any]:
    from rltemp.agents.config import load_agent
    from rltemp.agents.parallel import distill_many, iter_progress
    from rltemp.agents.train import resume_policy, train_policy
    from rltemp.kd.pipeline import get_teacher, prepare

    suite = load_suite(suite_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "suite.yaml", Path(suite_path).read_bytes())
    policy_runs: dict[str, dict[str, Any]] = {}
    cells: list[tuple[Config, Path]] = []
    keys: list[tuple[str, str, int]] = []
    for pair in suite.pairs:
        cfg = load_config(pair.config, pair.overrides)
        data, device, _ = prepare(cfg)
        get_teacher(cfg, data, device, progress)  # once, before parallel workers read the cache
        if "policy" in suite.methods:
            pdir = out / pair.name / "policy-training"
            if read_results(pdir) is None:
                if (pdir / "checkpoints" / "last.pt").exists():
                    policy_runs[pair.name] = resume_policy(pdir, progress)
                else:
                    agent = load_agent(suite.policy.agent, suite.policy.overrides)
                    policy_runs[pair.name] = train_policy(cfg, agent, out=pdir, progress=progress)
            else:
                policy_runs[pair.name] = read_results(pdir) or {}
        for m in _cell_methods(suite.methods):
            spec = f"policy:{out / pair.name / 'policy-training'}" if m == "policy" else m
            for s in suite.seeds:
                cells.append((cfg.with_temperature(spec, seed=s), out / pair.name / slug(m) / f"s{s}"))
                keys.append((pair.name, m, s))
    todo = [i for i, (_, d) in enumerate(cells) if read_results(d) is None]
    log.info("%d cells, %d to run", len(cells), len(todo))
    bar = iter_progress(len(todo), "bench", progress)
    failed: list[str] = []

    def done(_: int, r: dict[str, Any]) -> None:
        bar.update(1)

    try:
        distill_many([cells[i] for i in todo], jobs, on_done=done, errors=failed)
    finally:
        bar.close()
    rows = []
    for (pair, m, s), (_, d) in zip(keys, cells, strict=True):
        r = read_results(d)
        if r is None:
            continue
        t = r.get("temperature") or {}
        rows.append({"pair": pair, "method": m, "seed": s, "test_acc": r["test_acc"], "val_acc": r["val_acc"],
                     "best_val_acc": r["best_val_acc"], "wall_time_s": r["wall_time_s"], "kd_steps": r["kd_steps"],
                     "temperature_mean": t.get("mean"), "temperature_std": t.get("std"), "run_dir": str(d)})
    rows += _grid_rows(rows, suite)
    write_tables(out, suite, rows, policy_runs)
    if failed:
        raise RltempError(f"{len(failed)} cell(s) failed and were not counted (re-run to retry): {failed[0]}")
    return {"rows": rows, "policy": policy_runs}


def _grid_rows(rows: list[dict[str, Any]], suite: Suite) -> list[dict[str, Any]]:
    if "grid" not in suite.methods:
        return []
    out = []
    for pair in suite.pairs:
        for s in suite.seeds:
            runs = [r for r in rows if r["pair"] == pair.name and r["seed"] == s and r["method"] in GRID]
            if len(runs) < len(GRID):
                continue
            best = max(runs, key=lambda r: r["val_acc"])  # selection on validation only
            out.append({**best, "method": "grid", "chosen": best["method"],
                        "wall_time_s": sum(r["wall_time_s"] for r in runs),
                        "kd_steps": sum(r["kd_steps"] for r in runs)})
    return out


def write_tables(out: Path, suite: Suite, rows: list[dict[str, Any]], policy_runs: dict[str, dict[str, Any]]) -> None:
    cols = ["pair", "method", "seed", "test_acc", "val_acc", "best_val_acc", "wall_time_s", "kd_steps",
            "temperature_mean", "temperature_std", "chosen", "run_dir"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    atomic_write_bytes(out / "results.json", (json.dumps(rows, indent=2) + "\n").encode())
    lines = [f"# Bench `{suite.name}`", "",
             "Last-epoch test accuracy (%), mean ± std over seeds; Δ = paired difference over the same seeds "
             "with a 95 % t interval. Selection (grid's T) on validation only.", ""]
    for pair in suite.pairs:
        pr = [r for r in rows if r["pair"] == pair.name]
        by: dict[str, dict[int, dict[str, Any]]] = {}
        for r in pr:
            by.setdefault(r["method"], {})[r["seed"]] = r
        order = [m for m in [*suite.methods, *GRID] if m in by]
        order = list(dict.fromkeys(order))
        lines += [f"## {pair.name} (`{pair.config}` {' '.join(pair.overrides)})", "",
                  "| method | n | test acc % | Δ vs fixed:4 | Δ vs grid | wall s / run |", "|---|---|---|---|---|---|"]
        for m in order:
            seeds = sorted(by[m])
            acc = [100 * by[m][s]["test_acc"] for s in seeds]
            tm, ts = mean_std(acc)
            wall = statistics.mean(by[m][s]["wall_time_s"] for s in seeds)
            deltas = []
            for ref in ("fixed:4", "grid"):
                common = [s for s in seeds if s in by.get(ref, {})]
                if m == ref or len(common) < 2:
                    deltas.append("")
                    continue
                d, h = paired_ci([100 * by[m][s]["test_acc"] for s in common],
                                 [100 * by[ref][s]["test_acc"] for s in common])
                deltas.append(f"{d:+.2f} ± {h:.2f}{' *' if abs(d) > h else ''}")
            note = " (sum of its 4 runs)" if m == "grid" else ""
            lines.append(f"| {m} | {len(seeds)} | {tm:.2f} ± {ts:.2f} | {deltas[0]} | {deltas[1]} | {wall:.1f}{note} |")
        if "grid" in by:
            lines += ["", "grid's choice per seed: " + ", ".join(f"s{s}: {by['grid'][s]['chosen']}" for s in sorted(by["grid"]))]
        lines += ["", *cost_lines(by, policy_runs.get(pair.name)), ""]
    lines.append("`*`: the 95 % interval excludes zero.")
    atomic_write_bytes(out / "summary.md", ("\n".join(lines) + "\n").encode())
    plot(out / "accuracy.png", rows, suite)
    _hparams(out / "tb", rows)


def cost_lines(by: dict[str, dict[int, dict[str, Any]]], policy_run: dict[str, Any] | None) -> list[str]:
    def wall(m: str) -> float | None:
        return statistics.mean(r["wall_time_s"] for r in by[m].values()) if m in by else None

    grid, fixed, pol = wall("grid"), wall("fixed:4"), wall("policy")
    online = next((wall(m) for m in by if m.startswith("online:")), None)
    out = ["Cost accounting (wall time on this machine):"]
    if grid and online:
        out.append(f"- online mode ÷ 4-point grid: {online:.1f} s / {grid:.1f} s = **{online / grid:.2f}** (goal ≤ 0.5)")
    if grid and pol and policy_run:
        train = float(policy_run.get("wall_time_s", 0.0))
        if grid > pol:
            n = train / (grid - pol)
            out.append(f"- transferred policy: trained once in {train:.0f} s, then {pol:.1f} s per student vs "
                       f"{grid:.1f} s for a grid: cheaper than a grid per student after **{n:.1f}** students (goal ≤ 2)")
        else:
            out.append(f"- transferred policy: a run costs {pol:.1f} s, not less than a grid ({grid:.1f} s)")
    if fixed and pol:
        out.append(f"- transferred-policy distill ÷ fixed:4 distill: **{pol / fixed:.3f}** (goal ≤ 1.03; "
                   "`benchmarks/policy_overhead.py` measures it side by side)")
    return out


def plot(path: Path, rows: list[dict[str, Any]], suite: Suite) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [p.name for p in suite.pairs]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(9, 3.2 * len(pairs)), squeeze=False)
    for ax, pair in zip(axes[:, 0], pairs, strict=True):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["pair"] == pair))
        for i, m in enumerate(methods):
            acc = [100 * r["test_acc"] for r in rows if r["pair"] == pair and r["method"] == m]
            ax.scatter([i] * len(acc), acc, s=14, alpha=0.7)
            ax.hlines(statistics.mean(acc), i - 0.3, i + 0.3, colors="k")
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("test acc % (last epoch)")
        ax.set_title(pair, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _hparams(tb: Path, rows: list[dict[str, Any]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tb)) as w:
        for (pair, m) in dict.fromkeys((r["pair"], r["method"]) for r in rows):
            acc = [r["test_acc"] for r in rows if r["pair"] == pair and r["method"] == m]
            wall = [r["wall_time_s"] for r in rows if r["pair"] == pair and r["method"] == m]
            w.add_hparams({"pair": pair, "method": m},
                          {"hparam/test_acc_mean": statistics.mean(acc), "hparam/wall_time_s": statistics.mean(wall)},
                          run_name=f"{pair}-{slug(m)}-{time.time_ns()}")
