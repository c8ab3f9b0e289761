"""Environment factories for policy training: one schedule environment per worker, its share of the
training seeds, and the vectorised set (SB3's ``DummyVecEnv`` / ``SubprocVecEnv``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from rltemp.config import Config, config_from_dict
from rltemp.envs.run_env import KDRunScheduleEnv
from rltemp.errors import ConfigError


def schedule_env_factory(cfg_dict: dict[str, Any], seeds: list[int],
                         worker: bool = False) -> Callable[[], KDRunScheduleEnv]:
    """A picklable constructor of the schedule environment on ``seeds``; ``worker``: a
    worker process or Ray actor, one core per student (in-process envs run under the caller's setting).
    With a pool, every worker draws the same sequence of pairs (``pair_seed``: the config's seed), so
    the students the VecEnv steps side by side take about as long (a CNN beside an MLP would leave a core
    idle for most of the step)."""

    def make() -> KDRunScheduleEnv:
        if worker:
            torch.set_num_threads(1)
        raw = {**cfg_dict, "env": {**cfg_dict["env"], "seeds": seeds}}
        pair_seed = int(cfg_dict["seed"]) if cfg_dict["env"]["pool"] else None
        return KDRunScheduleEnv(config_from_dict(raw), pair_seed=pair_seed)

    return make


def seed_slices(cfg: Config, workers: int) -> list[list[int]]:
    """Each worker's share of ``env.seeds`` (seeds[i::workers]); empty lists without a pool (each
    worker then draws fresh seeds from its own seeded RNG)."""
    pool = list(cfg.env.seeds)
    if pool and len(pool) < workers:
        raise ConfigError(f"env.seeds has {len(pool)} seeds for {workers} workers; give at least one per worker")
    return [pool[i::workers] if pool else [] for i in range(workers)]


def schedule_vec_env(cfg: Config, jobs: int) -> VecEnv:
    """``jobs`` schedule envs (one student each, seeds split by :func:`seed_slices`), in worker
    processes when ``jobs`` > 1."""
    raw = cfg.to_dict()
    fns = [schedule_env_factory(raw, seeds, worker=jobs > 1) for seeds in seed_slices(cfg, jobs)]
    venv = SubprocVecEnv(fns, start_method="spawn") if jobs > 1 else DummyVecEnv(fns)
    return VecMonitor(venv)
