"""Run many distillations in parallel worker processes (spawned, one torch thread each)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rltemp.config import Config


def run_cell(cfg: Config, out: str) -> dict[str, Any]:
    """One cell: its ``results.json`` if complete (never redone), else run it with one torch thread —
    in a worker or in this process alike, so a cell's numbers do not depend on ``jobs`` (the thread
    count changes the order of floating-point reductions)."""
    import torch

    from rltemp.experiments.runner import run_method
    from rltemp.runs import read_results

    done = read_results(out)
    if done is not None:
        return {**done, "run_dir": out}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_method(cfg, out=out, progress=False)
    finally:
        torch.set_num_threads(threads)


def run_cells(cells: list[tuple[Config, str | Path]], jobs: int = 2,
              on_done: Callable[[int, dict[str, Any]], None] | None = None,
              errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Run every ``(config, out_dir)`` cell; results in the order of ``cells``.

    With ``errors`` given, a failing cell is recorded there (``"<dir>: <error>"``) and skipped;
    otherwise the first failure is raised.
    """
    results: list[dict[str, Any] | None] = [None] * len(cells)

    def finish(i: int, get: Callable[[], dict[str, Any]]) -> None:
        try:
            results[i] = get()
        except Exception as e:  # noqa: BLE001
            if errors is None:
                raise
            errors.append(f"{cells[i][1]}: {str(e).splitlines()[0] if str(e) else e.__class__.__name__}")
            return
        if on_done:
            on_done(i, results[i])

    if jobs <= 1:
        for i, (cfg, out) in enumerate(cells):
            finish(i, lambda cfg=cfg, out=out: run_cell(cfg, str(out)))
    else:
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(run_cell, cfg, str(out)): i for i, (cfg, out) in enumerate(cells)}
            for fut in as_completed(futs):
                finish(futs[fut], fut.result)
    return [r for r in results if r is not None]


def progress_bar(total: int, desc: str, progress: bool, unit: str = "run") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)
