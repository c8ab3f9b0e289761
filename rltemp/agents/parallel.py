"""Run many distillations in parallel worker processes (spawned, one torch thread each)."""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rltemp.config import Config


def _distill_cell(cfg: Config, out: str) -> dict[str, Any]:
    import torch

    import rltemp.agents  # noqa: F401  (registers policy:)
    from rltemp.kd.pipeline import run_distill
    from rltemp.runs import read_results

    torch.set_num_threads(1)
    done = read_results(out)
    if done is not None:  # a complete result is never redone
        return {**done, "run_dir": out}
    spec = cfg.distill.temperature
    if spec.startswith("online:"):
        from rltemp.agents.config import load_agent
        from rltemp.agents.train import run_online

        return run_online(cfg, load_agent(spec.split(":", 1)[1]), out=out, progress=False)
    return run_distill(cfg, out=out, progress=False)


def distill_many(cells: list[tuple[Config, str | Path]], jobs: int = 2,
                 on_done: Callable[[int, dict[str, Any]], None] | None = None,
                 errors: list[str] | None = None) -> list[dict[str, Any]]:
    """Distil every ``(config, out_dir)``; results in the order of ``cells``.

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
            finish(i, lambda cfg=cfg, out=out: _distill_cell(cfg, str(out)))
    else:
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_distill_cell, cfg, str(out)): i for i, (cfg, out) in enumerate(cells)}
            for fut in as_completed(futs):
                finish(futs[fut], fut.result)
    return [r for r in results if r is not None]


def iter_progress(total: int, desc: str, progress: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=not progress, leave=False)
