"""What the KD environments share: the training pairs (data, teacher and its logit caches), the
seeds, and a fresh :class:`~rltemp.kd.trainer.Distiller` per episode.

Every environment drives the very Distiller that ``rltemp distill`` uses (no second training loop).
``reset(seed=...)`` starts a fresh student: a pair of ``env.pool`` (the config's own pair without a
pool) and a seed from ``env.seeds``, both drawn with the env's seeded RNG (``options={"pair": i,
"student_seed": s}`` forces them; with no ``env.seeds`` a fresh seed in [1000, 2^31) is drawn, so
students seen in training never collide with the held-out seeds 0..999 of the benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rltemp.config import Config, EnvConfig, apply_overrides, config_from_dict, load_config, pool_configs
from rltemp.data.base import DataBundle
from rltemp.errors import ConfigError
from rltemp.kd.pipeline import build_student_model, get_teacher, prepare_data
from rltemp.kd.trainer import Distiller, predict_logits


def resolve_config(config: Config | str | None, overrides: list[str] | None) -> Config:
    if isinstance(config, Config):
        return config_from_dict(apply_overrides(config.to_dict(), overrides)) if overrides else config
    return load_config(config, overrides or [])


@dataclass
class Pair:
    """One training pair: its config, data and teacher, and the teacher's logits once computed."""

    name: str
    cfg: Config
    data: DataBundle
    teacher: nn.Module
    train_logits: torch.Tensor | None = None
    val_logits: torch.Tensor | None = None


class StudentRunsEnv(gym.Env):
    """Base class: one episode = one fresh student distilled for its pair's ``distill.epochs`` epochs."""

    metadata = {"render_modes": []}

    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False, pair_seed: int | None = None) -> None:
        """``pair_seed``: draw the pairs from an RNG of their own with this seed (the workers of one
        VecEnv share it, so they run the same pair at once and their steps, run side by side, take
        about as long); default: the env's seeded RNG, like the student seeds."""
        super().__init__()
        self._pair_rng = np.random.default_rng(pair_seed) if pair_seed is not None else None
        cfg = resolve_config(config, overrides)
        self.cfg = cfg
        self.ecfg: EnvConfig = cfg.env
        self.pairs: list[Pair] = []
        for name, pcfg in pool_configs(cfg):
            data, self.device = prepare_data(pcfg)  # the agent sets the temperatures: no strategy
            self.pairs.append(Pair(name, pcfg, data, get_teacher(pcfg, data, self.device, progress)))
        self.distiller: Distiller | None = None
        self.pair_index, self.student_seed = 0, -1

    @property
    def pair(self) -> Pair:
        """The pair of the current (or last) episode."""
        return self.pairs[self.pair_index]

    @property
    def data(self) -> DataBundle:
        return self.pair.data

    @property
    def teacher(self) -> nn.Module:
        return self.pair.teacher

    def single_pair(self, what: str) -> None:
        """Refuse a pool where the observation's shape depends on the pair (one row per instance)."""
        if len(self.pairs) > 1:
            raise ConfigError(f"env.pool: {what} works on one pair (its observation has a row per training instance)")

    def _draw(self, options: dict[str, Any]) -> tuple[int, int]:
        seeds = list(self.ecfg.seeds)
        if "student_seed" in options:
            seed = int(options["student_seed"])
        elif seeds:
            seed = int(seeds[self.np_random.integers(len(seeds))])
        else:
            seed = int(self.np_random.integers(1000, 2**31 - 1))
        rng = self._pair_rng if self._pair_rng is not None else self.np_random
        index = int(options["pair"]) if "pair" in options else int(rng.integers(len(self.pairs)))
        if not 0 <= index < len(self.pairs):
            raise ValueError(f"options['pair'] must index env.pool (0..{len(self.pairs) - 1}), got {index}")
        return seed, index

    def new_distiller(self, seed: int, index: int, strategy: Any = None) -> Distiller:
        """A fresh student of pair ``index`` (initial weights from ``seed``) in a Distiller; the teacher's
        logits are computed once per pair and reused by every episode. ``strategy``: a classic temperature
        strategy (reference runs) instead of the agent's temperatures."""
        p = self.pairs[index]
        student = build_student_model(p.cfg, p.data, seed)
        d = Distiller(p.cfg.distill, p.data, student, p.teacher, strategy, seed=seed, device=self.device,
                      external_temperature=strategy is None, teacher_cache=p.train_logits, teacher_val=p.val_logits)
        p.train_logits, p.val_logits = d.teacher_cache, d.teacher_val
        return d

    def fill_teacher_cache(self) -> None:
        """Compute the teachers' training-split logits now (otherwise the first episodes do)."""
        for p in self.pairs:
            if p.train_logits is None and not p.data.augmented:
                p.train_logits = predict_logits(p.teacher, p.data.train, p.data)

    def start_episode(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        """``gym.Env.reset``'s seeding, then a fresh student; returns the reset info."""
        super().reset(seed=seed)
        self.student_seed, self.pair_index = self._draw(options or {})
        self.distiller = self.new_distiller(self.student_seed, self.pair_index)
        return self.student_info()

    def student_info(self) -> dict[str, Any]:
        return {"student_seed": self.student_seed, "pair": self.pair.name, "pair_index": self.pair_index}

    def running_distiller(self) -> Distiller:
        """The episode's Distiller; an error when no episode is running (before reset, after the end)."""
        d = self.distiller
        if d is None or d.done:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        return d

    def action_tensor(self, action: Any) -> torch.Tensor:
        """``action`` as a float32 tensor on the env's device, checked against the action space's shape."""
        a = torch.as_tensor(np.asarray(action, dtype=np.float32)).to(self.device)
        if tuple(a.shape) != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {tuple(a.shape)}")
        return a


def observation_box(shape: tuple[int, ...]) -> gym.spaces.Box:
    return gym.spaces.Box(0.0, 1.0, shape, np.float32)
