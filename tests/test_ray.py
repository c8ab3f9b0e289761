"""Scale-out on Ray: a tiny suite on a local Ray gives the very cells of the process backend and
survives a killed worker; train-policy's episodes run in Ray actors and the policy transfers."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import TINY

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[ray]'; CI installs it)")

pytestmark = pytest.mark.slow


def _suite(tmp_path, methods, seeds=(0, 1), epochs=2):
    p = tmp_path / "suite.yaml"
    p.write_text("name: micro\n"
                 f"seeds: {list(seeds)}\n"
                 "pairs:\n  - name: tiny\n    config: envs/mnist1d.yaml\n"
                 f"    overrides: {json.dumps([*TINY, f'distill.epochs={epochs}'])}\n"
                 f"methods: {json.dumps(methods)}\n")
    return p


def _ray_workers() -> list[int]:
    """PIDs of Ray worker processes running a cell (their process title names the task)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if b"ray_cell" in (d / "cmdline").read_bytes():
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def test_ray_suite_equals_process_suite_and_survives_a_killed_worker(tmp_path):
    from rltemp.experiments.bench import run_bench

    suite = _suite(tmp_path, ["fixed:4", "anneal:6,1,linear"])
    a = run_bench(suite, tmp_path / "process", jobs=2, progress=False)["rows"]
    b = run_bench(suite, tmp_path / "ray", jobs=2, progress=False, backend="ray")["rows"]
    key = lambda r: (r["method"], r["seed"])  # noqa: E731
    assert sorted((key(r), r["test_acc"], r["val_acc"]) for r in a) == sorted((key(r), r["test_acc"],
                                                                               r["val_acc"]) for r in b)
    for r in b:
        folder = Path(r["run_dir"])
        assert (folder / "results.json").exists() and (folder / "last.pt").exists()
        assert list(folder.glob("events.out.tfevents.*"))  # TensorBoard events came back to the driver too
    # a worker killed mid-suite: Ray retries its task, every cell is written once
    slow = _suite(tmp_path, ["fixed:2", "fixed:8"], seeds=(0, 1, 2), epochs=12)
    out = tmp_path / "killed"
    killed: list[int] = []

    def killer() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for pid in _ray_workers():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    t = threading.Thread(target=killer)
    t.start()
    rows = run_bench(slow, out, jobs=2, progress=False, backend="ray")["rows"]
    t.join()
    assert killed, "no Ray worker was seen running a cell"
    assert sorted(key(r) for r in rows) == sorted((m, s) for m in ("fixed:2", "fixed:8") for s in (0, 1, 2))
    assert len(list(out.glob("tiny/*/s*/results.json"))) == 6


def test_train_policy_on_ray_actors_matches_worker_processes_and_transfers(tmp_path):
    from rltemp.agents.config import load_agent
    from rltemp.agents.train import train_policy
    from rltemp.cli import main
    from rltemp.config import load_config

    cfg = load_config("envs/mnist1d.yaml", [*TINY, "env.run_probe=0.5"])
    agent = load_agent("agents/ppo.yaml", ["agent.episodes=2", "agent.episodes_per_rollout=1", "agent.eval_every=0"])
    on_ray = train_policy(cfg, agent, out=tmp_path / "ray", progress=False, jobs=2, backend="ray")
    local = train_policy(cfg, agent, out=tmp_path / "process", progress=False, jobs=2)
    assert on_ray["backend"] == "ray" and on_ray["episode_returns"] == local["episode_returns"]
    assert (tmp_path / "ray" / "policy.pt").read_bytes() == (tmp_path / "process" / "policy.pt").read_bytes()
    assert main(["distill", "envs/mnist1d.yaml", "-T", f"policy:{tmp_path / 'ray'}", "--out", str(tmp_path / "t"),
                 "--no-progress", *TINY]) == 0
