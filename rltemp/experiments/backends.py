"""Where the runs of a suite execute: worker processes on this machine (``process``, the default) or
a Ray cluster (``ray``: an embedded local Ray when no address is given, ``address="auto"`` to join
a running cluster).

With Ray every cell is one task asking for its resources (one CPU; one GPU as well for a pair
whose device is a GPU), retried by Ray when its worker dies. Results come back to the **driver**,
which writes them into the suite folder: a task runs its cell in a private temporary folder and
returns the finished folder's files, so no shared filesystem is needed and a killed or failed task
never leaves a half-written cell (its ``results.json`` is written last, by the driver). The
teacher is trained (or loaded from the cache) once by the driver and shipped to the workers by
reference through Ray's object store; each worker generates the built-in datasets itself
(deterministically) — CIFAR and Fashion-MNIST files must exist on every node.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rltemp.agents.ray_cluster import install_teachers, start_ray, teacher_files
from rltemp.config import Config
from rltemp.paths import atomic_write_bytes

BACKENDS = ("process", "ray")


def _pack(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write_cell(out: Path, files: dict[str, bytes]) -> None:
    """Write a finished cell's files into ``out``, ``results.json`` last (the cell counts from then on)."""
    out.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        if rel != "results.json":
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / rel, data)
    atomic_write_bytes(out / "results.json", files["results.json"])


def ray_cell(cfg: Config, teachers: dict[str, bytes]) -> dict[str, bytes]:
    """A Ray task: place the shipped teacher(s) in this worker's cache, run the cell in a temporary
    folder with one torch thread, return the folder's files."""
    import torch

    from rltemp.experiments.runner import run_method

    install_teachers(teachers)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        run_method(cfg, out=Path(tmp) / "cell", progress=False)
        return _pack(Path(tmp) / "cell")


def run_cells_ray(cells: list[tuple[Config, Path]], address: str | None, jobs: int,
                  on_done: Callable[[int, dict[str, Any]], None] | None = None,
                  errors: list[str] | None = None) -> None:
    """Run every ``(config, out_dir)`` cell as a Ray task; the driver writes each finished cell."""
    ray, started = start_ray(address, jobs)
    try:
        teachers = ray.put(teacher_files([c for c, _ in cells]))
        task = ray.remote(max_retries=3)(ray_cell)
        pending = {}
        for i, (cfg, _) in enumerate(cells):
            gpu = 1 if cfg.device.startswith("cuda") else 0
            pending[task.options(num_cpus=1, num_gpus=gpu).remote(cfg, teachers)] = i
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(done[0])
            out = Path(cells[i][1])
            try:
                files = ray.get(done[0])
            except Exception as e:  # noqa: BLE001 - a cell that failed after its retries is reported, not counted
                if errors is None:
                    raise
                msg = str(e).strip().splitlines()[-1] if str(e).strip() else e.__class__.__name__
                errors.append(f"{out}: {msg}")
                continue
            write_cell(out, files)
            if on_done:
                on_done(i, {**json.loads(files["results.json"]), "run_dir": str(out)})
    finally:
        if started:
            ray.shutdown()
