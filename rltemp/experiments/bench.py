"""``rltemp bench SUITE``: every (pair, method, seed) cell of a suite, resumable, with honest summaries.

A suite (YAML, or a :class:`Suite` built in code, as the quickstart does) lists teacher/student
pairs (a preset plus overrides, optionally their own method list), methods (any temperature SPEC;
``grid`` = the best of ``fixed:{1,2,4,8}`` chosen per seed on validation; ``policy`` = a policy
trained once by the ``policy:`` section — per pair, or on the pair named by ``policy.train_on`` and
transferred to every other pair — then used frozen; ``online:AGENT``), seeds, and the reference
methods that the paired differences are taken against. ``metric: ce`` compares cross-entropy
(nats/char; a language-model suite) instead of accuracy: ``grid`` then picks T by validation CE,
and every Δ is signed so that positive means better (lower CE).

Each cell runs into ``OUT/<pair>/<method>/s<seed>/`` and counts only once its ``results.json``
exists (written last, atomically), so a second invocation redoes nothing, and a cell whose process
was killed or failed is simply run again next time; failed cells are reported, never counted.

Outputs: ``results.csv`` / ``results.json`` (one row per cell, ``grid`` rows derived from their four
runs), ``summary.md`` (per pair: mean ± std of last-epoch test and validation accuracy, paired
differences against each reference with 95 % t intervals over the same seeds, wall time, and the
cost accounting), ``accuracy.png`` (one dot per seed) and ``dashboard/``: the TensorBoard layout
(:data:`rltemp.kd.tblog.LAYOUT`) over every cell's event file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rltemp.config import Config, build_dataclass, load_config, read_yaml
from rltemp.errors import ConfigError, RltempError
from rltemp.experiments.stats import mean_std, paired_ci
from rltemp.kd.strategies import GRID, StrategyContext
from rltemp.paths import atomic_write_bytes
from rltemp.runs import read_results

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """What a suite compares: last-epoch accuracy (%) or cross-entropy (nats/char, language models).
    ``sign`` makes every Δ "higher is better" (a CE Δ is the reference's CE − the method's)."""

    key: str  # results.json's test_<key> / val_<key>
    scale: float
    sign: int
    label: str

    def of(self, row: dict[str, Any], split: str = "test") -> float:
        return self.scale * row[f"{split}_{self.key}"]

    def better(self, a: float, b: float) -> float:
        """How much better a is than b (positive: a is better)."""
        return self.sign * (a - b)


METRICS = {"acc": Metric("acc", 100.0, 1, "acc %"), "ce": Metric("loss", 1.0, -1, "CE nats/char")}


@dataclass(frozen=True)
class PairSpec:
    name: str = ""
    config: str = "envs/default.yaml"
    overrides: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)  # empty: the suite's methods
    policy_overrides: list[str] = field(default_factory=list)  # agent.* overrides for this pair's policy


@dataclass(frozen=True)
class PolicySpec:
    agent: str = "agents/ppo.yaml"
    overrides: list[str] = field(default_factory=list)
    train_on: str = ""  # a pair name: train there once and transfer to every pair; empty: one per pair


@dataclass(frozen=True)
class Suite:
    name: str = "suite"
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    pairs: list[PairSpec] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    policy: PolicySpec = field(default_factory=PolicySpec)
    references: list[str] = field(default_factory=lambda: ["fixed:4", "grid"])
    # a pair whose reference rows also serve pairs that lack them (ablations: one set of baselines,
    # many policy variants on the same distillation config and seeds)
    references_from: str = ""
    metric: str = "acc"  # acc: last-epoch accuracy; ce: cross-entropy (a language-model suite; grid's T by val CE)

    @property
    def score(self) -> Metric:
        return METRICS[self.metric]

    def methods_of(self, pair: PairSpec) -> list[str]:
        return list(pair.methods or self.methods)


def slug(method: str) -> str:
    return method.replace(":", "_").replace(",", "-").replace("/", "-").replace(".yaml", "")


def check_suite(suite: Suite, source: str = "suite") -> Suite:
    """Fail now on an incomplete suite, bad presets / overrides or bad method SPECs."""
    from rltemp.experiments.runner import check_method

    if not suite.pairs or not suite.seeds or not all(suite.methods_of(p) for p in suite.pairs):
        raise ConfigError(f"{source}: a suite needs pairs, methods and seeds")
    names = [p.name for p in suite.pairs]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"{source}: every pair needs a distinct name")
    if suite.metric not in METRICS:
        raise ConfigError(f"{source}: metric must be one of {', '.join(METRICS)}, got {suite.metric!r}")
    for key, value in (("policy.train_on", suite.policy.train_on), ("references_from", suite.references_from)):
        if value and value not in names:
            raise ConfigError(f"{source}: {key} names no pair: {value!r}; pairs: {', '.join(names)}")
    for p in suite.pairs:
        cfg = load_config(p.config, p.overrides)
        for m in suite.methods_of(p):
            if m not in ("grid", "policy"):
                check_method(m, StrategyContext(100, cfg.distill.epochs))
    return suite


def load_suite(path: str | Path) -> Suite:
    return check_suite(build_dataclass(Suite, read_yaml(path), "suite"), str(path))


def cell_methods(methods: list[str]) -> list[str]:
    """The runs behind the methods: ``grid`` expands to its four fixed-T runs (shared with fixed:4)."""
    out: list[str] = []
    for m in methods:
        for r in GRID if m == "grid" else [m]:
            if r not in out:
                out.append(r)
    return out


def run_bench(suite_path: str | Path, out: str | Path, jobs: int = 2, progress: bool = True,
              backend: str = "process", address: str | None = None) -> dict[str, Any]:
    suite = load_suite(suite_path)
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(out) / "suite.yaml", Path(suite_path).read_bytes())
    return run_suite(suite, out, jobs, progress, backend=backend, address=address)


def _policy_run(suite: Suite, pair: PairSpec, cfg: Config, pdir: Path, progress: bool, jobs: int) -> dict[str, Any]:
    """The suite's policy trained into ``pdir`` (resumed if interrupted, reused if complete)."""
    done = read_results(pdir)
    if done is not None:
        return done
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import resume_policy, train_policy

    if (pdir / "checkpoints" / "last.pt").exists():
        return resume_policy(pdir, progress, jobs=jobs)
    agent = load_agent(suite.policy.agent, [*suite.policy.overrides, *pair.policy_overrides])
    return train_policy(cfg, agent, out=pdir, progress=progress, jobs=jobs)


def run_suite(suite: Suite, out: str | Path, jobs: int = 2, progress: bool = True,
              say: Callable[[str], None] | None = None, backend: str = "process",
              address: str | None = None) -> dict[str, Any]:
    """Run every missing cell of ``suite`` into ``out`` (worker processes, or Ray tasks with
    ``backend="ray"``: see :mod:`rltemp.experiments.backends`); write the tables; return rows and
    policy runs."""
    from rltemp.agents.ray_cluster import require_ray
    from rltemp.experiments.backends import BACKENDS

    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if backend == "ray":
        require_ray()
    from rltemp.experiments.parallel import progress_bar, run_cells
    from rltemp.kd.pipeline import get_teacher, prepare
    from rltemp.kd.tblog import write_layout

    say = say or log.info
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_layout(out)  # the TensorBoard dashboard of the whole folder
    # each pair's runs carry its name (run folders, the TensorBoard hparams' "pair" column)
    configs = {p.name: load_config(p.config, p.overrides).replace(name=p.name) for p in suite.pairs}
    for p in suite.pairs:  # teachers once, before parallel workers read the cache
        data, device, _ = prepare(configs[p.name])
        get_teacher(configs[p.name], data, device, progress)
    policy_runs: dict[str, dict[str, Any]] = {}
    policy_dirs: dict[str, Path] = {}
    for p in suite.pairs:
        if "policy" not in suite.methods_of(p):
            continue
        home = suite.policy.train_on or p.name
        policy_dirs[p.name] = out / home / "policy-training"
        if home not in policy_runs:
            hp = next(q for q in suite.pairs if q.name == home)
            say(f"policy for {home}: {suite.policy.agent} {' '.join([*suite.policy.overrides, *hp.policy_overrides])}")
            policy_runs[home] = _policy_run(suite, hp, configs[home], policy_dirs[p.name], progress, jobs)
        policy_runs[p.name] = policy_runs[home]
    cells: list[tuple[Config, Path]] = []
    keys: list[tuple[str, str, int]] = []
    for p in suite.pairs:
        for m in cell_methods(suite.methods_of(p)):
            spec = f"policy:{policy_dirs[p.name]}" if m == "policy" else m
            for s in suite.seeds:
                cells.append((configs[p.name].with_temperature(spec, seed=s), out / p.name / slug(m) / f"s{s}"))
                keys.append((p.name, m, s))
    todo = [i for i, (_, d) in enumerate(cells) if read_results(d) is None]
    say(f"{len(cells)} runs, {len(todo)} to do ({jobs} {'processes' if backend == 'process' else 'Ray CPUs'})")
    bar = progress_bar(len(todo), "bench", progress)
    failed: list[str] = []
    try:
        if backend == "ray":
            from rltemp.experiments.backends import run_cells_ray

            run_cells_ray([cells[i] for i in todo], address, jobs, on_done=lambda _i, _r: bar.update(1), errors=failed)
        else:
            run_cells([cells[i] for i in todo], jobs, on_done=lambda _i, _r: bar.update(1), errors=failed)
    finally:
        bar.close()
    rows = []
    for (pair, m, s), (_, d) in zip(keys, cells, strict=True):
        r = read_results(d)
        if r is None:
            continue
        t = r.get("temperature") or {}
        rows.append({"pair": pair, "method": m, "seed": s, "test_acc": r["test_acc"], "val_acc": r["val_acc"],
                     "test_loss": r.get("test_loss"), "val_loss": r.get("val_loss"),
                     "best_val_acc": r["best_val_acc"], "wall_time_s": r["wall_time_s"], "kd_steps": r["kd_steps"],
                     "temperature_mean": t.get("mean"), "temperature_std": t.get("std"), "run_dir": str(d),
                     "temperature_by_epoch": r.get("temperature_by_epoch"),
                     "teacher_test_loss": r.get("teacher_test_loss"),
                     "test_loss_by_teacher_entropy": r.get("test_loss_by_teacher_entropy")})
    rows += grid_rows(rows, suite)
    write_tables(out, suite, rows, policy_runs)
    if failed:
        raise RltempError(f"{len(failed)} cell(s) failed and were not counted (re-run to retry): {failed[0]}")
    return {"rows": rows, "policy": policy_runs}


def grid_rows(rows: list[dict[str, Any]], suite: Suite) -> list[dict[str, Any]]:
    """Per pair and seed, the fixed-T run with the best last-epoch *validation* score (the suite's metric)."""
    out = []
    for pair in suite.pairs:
        if "grid" not in suite.methods_of(pair):
            continue
        for s in suite.seeds:
            runs = [r for r in rows if r["pair"] == pair.name and r["seed"] == s and r["method"] in GRID]
            if len(runs) < len(GRID):
                continue
            best = max(runs, key=lambda r: suite.score.sign * suite.score.of(r, "val"))  # on validation only
            out.append({**best, "method": "grid", "chosen": best["method"],
                        "wall_time_s": sum(r["wall_time_s"] for r in runs),
                        "kd_steps": sum(r["kd_steps"] for r in runs)})
    return out


def by_method(rows: list[dict[str, Any]], pair: str) -> dict[str, dict[int, dict[str, Any]]]:
    by: dict[str, dict[int, dict[str, Any]]] = {}
    for r in rows:
        if r["pair"] == pair:
            by.setdefault(r["method"], {})[r["seed"]] = r
    return by


def pair_table(by: dict[str, dict[int, dict[str, Any]]], order: list[str], references: list[str],
               metric: Metric = METRICS["acc"]) -> list[str]:
    """Markdown rows: the metric's mean ± std and paired Δ (95 % t interval, ``*`` if it excludes 0;
    positive: better than the reference)."""
    from rltemp.kd.pipeline import method_name

    refs = [r for r in references if r in by]
    digits = 2 if metric.scale == 100 else 4
    lines = [f"| method | n | test {metric.label} | val {metric.label} | " + " | ".join(f"Δ vs {r}" for r in refs)
             + " | wall s / run |", "|---|---|---|---|" + "---|" * len(refs) + "---|"]
    for m in order:
        seeds = sorted(by[m])
        tm, ts = mean_std([metric.of(by[m][s]) for s in seeds])
        vm, vs = mean_std([metric.of(by[m][s], "val") for s in seeds])
        wall = statistics.mean(by[m][s]["wall_time_s"] for s in seeds)
        deltas = []
        for ref in refs:
            common = [s for s in seeds if s in by[ref]]
            if m == ref or len(common) < 2:
                deltas.append("")
                continue
            d, h = paired_ci([metric.sign * metric.of(by[m][s]) for s in common],
                             [metric.sign * metric.of(by[ref][s]) for s in common])
            deltas.append(f"{d:+.{digits}f} ± {h:.{digits}f}{' *' if abs(d) > h else ''}")
        note = " (sum of its 4 runs)" if m == "grid" else ""
        lines.append(f"| {method_name(m)} | {len(seeds)} | {tm:.{digits}f} ± {ts:.{digits}f} | "
                     f"{vm:.{digits}f} ± {vs:.{digits}f} | "
                     + "".join(f"{d} | " for d in deltas) + f"{wall:.1f}{note} |")
    return lines


def summary_lines(suite: Suite, rows: list[dict[str, Any]], policy_runs: dict[str, dict[str, Any]]) -> list[str]:
    what = ("test accuracy (%)" if suite.metric == "acc" else
            "test cross-entropy (nats/char; Δ = the reference's CE − the method's, positive: lower CE)")
    lines = [f"Last-epoch {what}, mean ± std over seeds; Δ = paired difference over the same seeds "
             "with a 95 % t interval. Selection (grid's T) on validation only.", ""]
    shared = by_method(rows, suite.references_from) if suite.references_from else {}
    for pair in suite.pairs:
        by = by_method(rows, pair.name)
        order = list(dict.fromkeys(m for m in [*suite.methods_of(pair), *GRID] if m in by))
        by = {**{r: shared[r] for r in suite.references if r in shared and r not in by}, **by}
        lines += [f"## {pair.name} (`{pair.config}` {' '.join(pair.overrides)})", "",
                  *pair_table(by, order, suite.references, suite.score)]
        if "grid" in by:
            chosen = ", ".join(f"s{s}: {by['grid'][s]['chosen']}" for s in sorted(by["grid"]))
            lines += ["", f"grid's choice per seed: {chosen}"]
        if suite.metric == "ce":
            lines += gap_lines(by, order)
        lines += ["", *cost_lines(by, policy_runs.get(pair.name)), ""]
    if len(suite.pairs) > 1:
        lines += across_pairs(suite, rows)
    lines.append("`*`: the 95 % interval excludes zero.")
    return lines


def gap_lines(by: dict[str, dict[int, dict[str, Any]]], order: list[str]) -> list[str]:
    """A language-model pair's share of the CE run → teacher gap each method closes, per seed
    (CE_ce − CE_m) / (CE_ce − CE_teacher), and its test CE by quartile of the teacher's entropy."""
    from rltemp.kd.pipeline import method_name

    if "ce" not in by:
        return []
    out = ["", "| method | gap to the teacher closed % | test CE by teacher-entropy quartile (sure → unsure) |",
           "|---|---|---|"]
    for m in order:
        seeds = [s for s in sorted(by[m]) if s in by["ce"] and by[m][s].get("teacher_test_loss") is not None]
        if not seeds:
            continue
        gap = [100 * (by["ce"][s]["test_loss"] - by[m][s]["test_loss"])
               / (by["ce"][s]["test_loss"] - by[m][s]["teacher_test_loss"]) for s in seeds]
        quart = [r for r in (by[m][s].get("test_loss_by_teacher_entropy") for s in seeds) if r and None not in r]
        q = " / ".join(f"{statistics.mean(col):.3f}" for col in zip(*quart)) if quart else ""
        g, gs = mean_std(gap)
        out.append(f"| {method_name(m)} | {g:.1f} ± {gs:.1f} | {q} |")
    return out


def across_pairs(suite: Suite, rows: list[dict[str, Any]]) -> list[str]:
    """Every method against every reference over all (pair, seed) cells that both have: the mean of
    the per-pair mean differences, and the pooled paired difference over the cells with its 95 % t
    interval; and which single rule the suite lists (fixed or annealed) is best by its mean over every cell."""
    from rltemp.kd.pipeline import method_name

    cells = {(r["pair"], r["method"], r["seed"]): suite.score.sign * suite.score.of(r) for r in rows}
    methods = list(dict.fromkeys(r["method"] for r in rows))
    refs = [r for r in suite.references if r in methods]
    out = ["## Across the pairs", "",
           "Δ per pair averaged over the pairs, and Δ pooled over every (pair, seed) cell with its paired 95 % t "
           "interval (n cells).", "",
           "| method | pairs | " + " | ".join(f"Δ vs {r}: mean of pairs / pooled" for r in refs) + " |",
           "|---|---|" + "---|" * len(refs)]
    for m in methods:
        row = []
        for ref in refs:
            keys = [(p, s) for (p, mm, s) in cells if mm == m and (p, ref, s) in cells]
            if m == ref or len(keys) < 2:
                row.append("")
                continue
            a, b = [cells[(p, m, s)] for p, s in keys], [cells[(p, ref, s)] for p, s in keys]
            pairs = sorted({p for p, _ in keys})
            per_pair = [statistics.mean(cells[(p, m, s)] - cells[(p, ref, s)] for q, s in keys if q == p)
                        for p in pairs]
            d, h = paired_ci(a, b)
            star = " *" if abs(d) > h else ""
            f = 2 if suite.metric == "acc" else 4
            row.append(f"{statistics.mean(per_pair):+.{f}f} / {d:+.{f}f} ± {h:.{f}f}{star} (n {len(keys)})")
        n_pairs = len({p for (p, mm, _) in cells if mm == m})
        out.append(f"| {method_name(m)} | {n_pairs} | " + " | ".join(row) + " |")
    listed = {m for p in suite.pairs for m in suite.methods_of(p)}  # not the grid's own runs
    rules = [m for m in methods if m in listed and m.startswith(("fixed:", "anneal:"))]
    pair_names = [p.name for p in suite.pairs]
    complete = [m for m in rules if all(any(k[0] == p and k[1] == m for k in cells) for p in pair_names)]
    if complete:
        means = {m: statistics.mean(v for (p, mm, _), v in cells.items() if mm == m) for m in complete}
        best = max(means, key=means.get)
        sign, unit = suite.score.sign, " %" if suite.metric == "acc" else " nats/char"
        others = ", ".join(f"`{m}` {sign * v:.2f}" for m, v in means.items() if m != best)
        out += ["", "The one hand rule a person would use everywhere (the best fixed or annealed rule by its mean over "
                f"every cell): `{best}` ({sign * means[best]:.2f}{unit}" + (f"; {others}" if others else "") + ")."]
    return [*out, ""]


def write_tables(out: Path, suite: Suite, rows: list[dict[str, Any]], policy_runs: dict[str, dict[str, Any]]) -> None:
    cols = ["pair", "method", "seed", "test_acc", "val_acc", "test_loss", "val_loss", "best_val_acc", "wall_time_s",
            "kd_steps", "temperature_mean", "temperature_std", "chosen", "run_dir"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(out / "results.csv", buf.getvalue().encode())
    atomic_write_bytes(out / "results.json", (json.dumps(rows, indent=2) + "\n").encode())
    text = "\n".join([f"# Bench `{suite.name}`", "", *summary_lines(suite, rows, policy_runs)]) + "\n"
    atomic_write_bytes(out / "summary.md", text.encode())
    plot(out / "accuracy.png", rows, suite)
    schedules(out, rows, suite)


def cost_lines(by: dict[str, dict[int, dict[str, Any]]], policy_run: dict[str, Any] | None) -> list[str]:
    def wall(m: str) -> float | None:
        return statistics.mean(r["wall_time_s"] for r in by[m].values()) if m in by else None

    pol_name = next((m for m in by if m == "policy" or m.startswith("policy:")), "policy")
    grid, fixed, pol = wall("grid"), wall("fixed:4"), wall(pol_name)
    online = next((wall(m) for m in by if m.startswith("online:")), None)
    out = ["Cost accounting (wall time on this machine):"]
    if grid and online:
        ratio = online / grid
        out.append(f"- online mode ÷ 4-point grid: {online:.1f} s / {grid:.1f} s = **{ratio:.2f}** (goal ≤ 0.5)")
    if pol_name.startswith("policy:"):  # a shipped / earlier policy: its own record, not this suite's fresh one
        policy_run = _shipped_training(pol_name.split(":", 1)[1])
    if grid and pol and policy_run:
        train = float(policy_run.get("wall_time_s", 0.0))
        if grid > pol:
            n = train / (grid - pol)
            out.append(f"- transferred policy ({pol_name}): trained once in {train:.0f} s, then {pol:.1f} s per "
                       f"student vs {grid:.1f} s for a grid: cheaper than a grid per student after **{n:.1f}** "
                       "students")
        else:
            out.append(f"- transferred policy ({pol_name}): a run costs {pol:.1f} s, not less than a grid "
                       f"({grid:.1f} s)")
    if fixed and pol:
        out.append(f"- transferred-policy distill ÷ fixed:4 distill in this table: {pol / fixed:.2f} (cells share the "
                   "machine, so only indicative; `benchmarks/policy_overhead.py` measures it side by side)")
    return out if len(out) > 1 else []


def _shipped_training(name: str) -> dict[str, Any] | None:
    """The training cost a shipped / earlier-trained policy records in its policy.json."""
    try:
        from rltemp.kd.policy import resolve_policy

        meta = json.loads(resolve_policy(name).read_text())
    except Exception:  # noqa: BLE001 - no record, no cost line
        return None
    return {"wall_time_s": meta.get("trained_on", {}).get("wall_time_s", 0.0)}


def schedules(out: Path, rows: list[dict[str, Any]], suite: Suite) -> None:
    """One chart of the schedule each policy chose on each pair (mean temperature per epoch over the
    seeds, the seeds' range shaded): ``schedules.png``, and the same figure in the folder's dashboard
    run (TensorBoard's IMAGES: ``policy/schedule_per_pair``), so the reader sees the policy adapt."""
    policies = [m for m in dict.fromkeys(r["method"] for r in rows)
                if m == "policy" or m.startswith(("policy:", "online:"))]
    curves = {(m, p.name): [r["temperature_by_epoch"] for r in rows if r["method"] == m and r["pair"] == p.name
                            and r.get("temperature_by_epoch")] for m in policies for p in suite.pairs}
    curves = {k: v for k, v in curves.items() if v}
    if not curves:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    from rltemp.kd.pipeline import method_name

    fig, axes = plt.subplots(1, len(policies), figsize=(6.5 * len(policies), 3.8), squeeze=False)
    for ax, m in zip(axes[0], policies, strict=True):
        for p in suite.pairs:
            runs = curves.get((m, p.name))
            if not runs:
                continue
            n = min(len(c) for c in runs)
            t = np.array([c[:n] for c in runs])
            x = np.arange(n) / max(n - 1, 1)
            ax.plot(x, t.mean(0), label=p.name)
            ax.fill_between(x, t.min(0), t.max(0), alpha=0.15)
        ax.set_yscale("log")
        ax.set_xlabel("progress (epoch / last epoch)")
        ax.set_ylabel("temperature (mean over the seeds)")
        ax.set_title(f"{method_name(m)}: the schedule it chose, per pair", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "schedules.png", dpi=110)
    with SummaryWriter(str(out / "dashboard")) as w:
        w.add_figure("policy/schedule_per_pair", fig, 0)  # closes the figure


def plot(path: Path, rows: list[dict[str, Any]], suite: Suite) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [p.name for p in suite.pairs]
    fig, axes = plt.subplots(len(pairs), 1, figsize=(9, 3.2 * len(pairs)), squeeze=False)
    for ax, pair in zip(axes[:, 0], pairs, strict=True):
        methods = list(dict.fromkeys(r["method"] for r in rows if r["pair"] == pair))
        for i, m in enumerate(methods):
            acc = [suite.score.of(r) for r in rows if r["pair"] == pair and r["method"] == m]
            ax.scatter([i] * len(acc), acc, s=14, alpha=0.7)
            ax.hlines(statistics.mean(acc), i - 0.3, i + 0.3, colors="k")
        ax.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(f"test {suite.score.label} (last epoch)")
        ax.set_title(pair, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
