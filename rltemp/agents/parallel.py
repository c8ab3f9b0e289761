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
    return run_distill(cfg, out=out, progress=False)


def distill_many(cells: list[tuple[Config, str | Path]], jobs: int = 2,
                 on_done: Callable[[int, dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Distil every ``(config, out_dir)``; results in the order of ``cells``."""
    results: list[dict[str, Any] | None] = [None] * len(cells)
    if jobs <= 1:
        for i, (cfg, out) in enumerate(cells):
            results[i] = _distill_cell(cfg, str(out))
            if on_done:
                on_done(i, results[i])
    else:
        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            futs = {pool.submit(_distill_cell, cfg, str(out)): i for i, (cfg, out) in enumerate(cells)}
            for fut in as_completed(futs):
                i = futs[fut]
                results[i] = fut.result()
                if on_done:
                    on_done(i, results[i])
    return [r for r in results if r is not None]


def iter_progress(total: int, desc: str, progress: bool) -> Iterator[Any]:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", disable=not progress, leave=False)
