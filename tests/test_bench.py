import csv
import json
import shutil

import pytest
from conftest import TINY

from rltemp.errors import ConfigError
from rltemp.experiments.bench import load_suite, run_bench


def _suite(tmp_path, methods, seeds=(0, 1), extra=""):
    p = tmp_path / "suite.yaml"
    p.write_text(
        "name: micro\n"
        f"seeds: {list(seeds)}\n"
        "pairs:\n  - name: tiny\n    config: envs/mnist1d.yaml\n"
        f"    overrides: {json.dumps(TINY)}\n"
        f"methods: {json.dumps(methods)}\n" + extra
    )
    return p


def test_micro_suite_end_to_end_resumes_and_reruns_killed_cells(tmp_path):
    suite = _suite(tmp_path, ["fixed:4", "ce"])
    out = tmp_path / "out"
    res = run_bench(suite, out, jobs=1, progress=False)
    rows = res["rows"]
    assert {(r["method"], r["seed"]) for r in rows} == {("fixed:4", 0), ("fixed:4", 1), ("ce", 0), ("ce", 1)}
    with open(out / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    summary = (out / "summary.md").read_text()
    assert "| fixed:4 | 2 |" in summary and "| ce | 2 |" in summary and "Δ vs fixed:4" in summary
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    # a second invocation redoes nothing: results.json files are untouched
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("s*/results.json")}
    run_bench(suite, out, jobs=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("s*/results.json")} == stamps
    # a cell killed mid-run (no results.json) is run again
    killed = out / "tiny" / "ce" / "s1"
    (killed / "results.json").unlink()
    run_bench(suite, out, jobs=1, progress=False)
    assert (killed / "results.json").exists()
    assert [p for p in stamps if p.parent != killed] and all(
        p.stat().st_mtime_ns == t for p, t in stamps.items() if p.parent != killed)


def test_grid_is_chosen_on_validation_and_costs_four_runs(tmp_path):
    suite = _suite(tmp_path, ["grid"], seeds=(0,))
    out = tmp_path / "g"
    rows = run_bench(suite, out, jobs=1, progress=False)["rows"]
    fixed = [r for r in rows if r["method"].startswith("fixed:")]
    grid = [r for r in rows if r["method"] == "grid"]
    assert len(fixed) == 4 and len(grid) == 1
    best = max(fixed, key=lambda r: r["val_acc"])
    assert grid[0]["chosen"] == best["method"] and grid[0]["test_acc"] == best["test_acc"]
    assert grid[0]["wall_time_s"] == pytest.approx(sum(r["wall_time_s"] for r in fixed))


def test_bad_suites_fail_clearly(tmp_path):
    with pytest.raises(ConfigError, match="needs pairs, methods and seeds"):
        p = tmp_path / "s.yaml"
        p.write_text("name: x\nseeds: [0]\nmethods: [fixed:4]\n")
        load_suite(p)
    with pytest.raises(Exception, match="did you mean 'fixed'"):
        load_suite(_suite(tmp_path, ["fixd:4"]))
    shutil.rmtree(tmp_path)


@pytest.mark.slow
def test_quickstart_prints_the_shipped_policy_against_the_grid(tmp_path, capsys, monkeypatch):
    """The quickstart's story on a seconds-long pair: the table with paired intervals, the schedule
    chart, the dashboard, and the command to open it."""
    from conftest import TINY

    import rltemp.experiments.quickstart as qs
    from rltemp.cli import main

    monkeypatch.setattr(qs, "PAIRS", [("tiny", "envs/mnist1d.yaml", [*TINY, "distill.epochs=3"])])
    assert main(["quickstart", "--seeds", "2", "--jobs", "1", "--out", str(tmp_path / "q"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| policy:default | 2 |" in out and "Δ vs grid" in out and "tensorboard --logdir" in out
    for f in ("summary.md", "results.csv", "schedules.png", "accuracy.png"):
        assert (tmp_path / "q" / f).is_file(), f
    assert main(["quickstart", "--seeds", "1"]) == 2


def _criterion():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fixed_t_table", "benchmarks/fixed_t_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.criterion


@pytest.mark.parametrize("ce_loss, holds", [(2.0, True), (1.52, False)])
def test_the_pair_criterion_on_cross_entropy_picks_t_by_val_loss(ce_loss, holds):
    """Lower is better on CE: T is chosen by the lowest validation CE and the gain is CE − KD."""
    test_ce = {"ce": ce_loss, "fixed:1": 1.5, "fixed:2": 1.6, "fixed:4": 1.8, "fixed:8": 2.1}
    val_ce = {**test_ce, "fixed:1": 1.7, "fixed:2": 1.55}  # validation prefers T = 2
    by = {m: {s: {"test_loss": v + 0.01 * s, "val_loss": val_ce[m] + 0.01 * s, "test_acc": 0.5, "val_acc": 0.5}
              for s in range(5)} for m, v in test_ce.items()}
    out = _criterion()(by, "ce", 120, 100.0)
    assert "best fixed T on val: fixed:2" in out and "| fixed:8 | 2.1200 ± 0.0158 |" in out
    assert f"KD gain over CE {ce_loss - 1.6:+.4f} nats/char" in out
    assert out.endswith("HOLDS" if holds else "FAILS")
    assert _criterion()(by, "ce", 60, 100.0).endswith("FAILS")  # the slowest run is over the budget


def test_a_cross_entropy_suite_chooses_grid_by_val_ce_and_counts_lower_as_better():
    from rltemp.experiments.bench import METRICS, PairSpec, Suite, by_method, grid_rows, pair_table

    suite = Suite(name="lm", seeds=[0, 1, 2], pairs=[PairSpec("p", "envs/mnist1d.yaml")],
                  methods=["ce", "grid"], references=["grid"], metric="ce")
    ce = {"ce": 2.0, "fixed:1": 1.6, "fixed:2": 1.5, "fixed:4": 1.7, "fixed:8": 1.9}
    rows = [{"pair": "p", "method": m, "seed": s, "test_loss": v + 0.01 * s, "val_loss": v + 0.02 * s,
             "test_acc": 0.5, "val_acc": 0.9 if m == "fixed:8" else 0.5, "wall_time_s": 1.0, "kd_steps": 1,
             "teacher_test_loss": 1.0 + 0.01 * s, "test_loss_by_teacher_entropy": [0.5, 1.0, v, 3.0]}
            for m, v in ce.items() for s in suite.seeds]
    grid = grid_rows(rows, suite)
    assert {r["chosen"] for r in grid} == {"fixed:2"}  # the lowest validation CE, not the best accuracy
    by = by_method(rows + grid, "p")
    table = "\n".join(pair_table(by, ["ce", "grid"], ["grid"], METRICS["ce"]))
    assert "| ce | 3 | 2.0100 ± 0.0100 |" in table and "-0.5000 ± 0.0000 *" in table  # CE is 0.5 nats/char worse
    from rltemp.experiments.bench import gap_lines

    gaps = "\n".join(gap_lines(by, ["ce", "grid"]))
    assert "| ce | 0.0 ± 0.0 | 0.500 / 1.000 / 2.000 / 3.000 |" in gaps
    assert "| grid | 50.0 ± 0.0 | 0.500 / 1.000 / 1.500 / 3.000 |" in gaps  # (2.0 − 1.5) / (2.0 − 1.0)
    with pytest.raises(ConfigError, match="metric must be one of acc, ce"):
        from rltemp.experiments.bench import check_suite

        check_suite(Suite(name="x", pairs=[PairSpec("p", "envs/mnist1d.yaml")], methods=["ce"], metric="bleu"))


def test_the_hand_rule_line_names_the_best_rule_and_lists_the_others_only_if_there_are_any():
    from rltemp.experiments.bench import PairSpec, Suite, across_pairs

    def line(methods):
        pairs = [PairSpec("a", "envs/mnist1d.yaml"), PairSpec("b", "envs/mnist1d.yaml")]
        suite = Suite(name="x", seeds=[0, 1], pairs=pairs, methods=methods, references=[])
        rows = [{"pair": p, "method": m, "seed": s, "test_acc": 0.5 + 0.1 * i + 0.01 * s, "val_acc": 0.0}
                for i, m in enumerate(methods) for p in "ab" for s in (0, 1)]
        return [x for x in across_pairs(suite, rows) if "hand rule" in x][0]

    assert line(["fixed:4"]).endswith("`fixed:4` (50.50 %).")
    assert line(["fixed:4", "anneal:6,1,linear"]).endswith("`anneal:6,1,linear` (60.50 %; `fixed:4` 50.50).")
