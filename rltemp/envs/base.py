"""What the KD environments share: the data, the teacher (and its logit cache), the pool of
students and seeds, and a fresh :class:`~rltemp.kd.trainer.Distiller` per episode.

Every environment drives the very Distiller that ``rltemp distill`` uses (no second training loop).
``reset(seed=...)`` starts a fresh student: architecture from ``env.students`` and seed from
``env.seeds`` (drawn with the env's seeded RNG; ``options={"student_seed": s, "student": i}``
forces them; with no ``env.seeds`` a fresh seed in [1000, 2^31) is drawn, so students seen in
training never collide with the held-out seeds 0..999 of the benchmarks).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltemp.config import Config, EnvConfig, TrainingStudentConfig, apply_overrides, config_from_dict, load_config
from rltemp.kd.pipeline import get_teacher, prepare_data
from rltemp.kd.trainer import Distiller, predict_logits
from rltemp.models import build_model


def resolve_config(config: Config | str | None, overrides: list[str] | None) -> Config:
    if isinstance(config, Config):
        return config_from_dict(apply_overrides(config.to_dict(), overrides)) if overrides else config
    return load_config(config, overrides or [])


class StudentRunsEnv(gym.Env):
    """Base class: one episode = one fresh student distilled for ``distill.epochs`` epochs."""

    metadata = {"render_modes": []}

    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False) -> None:
        super().__init__()
        cfg = resolve_config(config, overrides)
        self.cfg = cfg
        self.ecfg: EnvConfig = cfg.env
        self.data, self.device = prepare_data(cfg)  # the agent sets the temperatures: no strategy
        self.teacher = get_teacher(cfg, self.data, self.device, progress)
        self.students = list(self.ecfg.students) or [TrainingStudentConfig(cfg.student.model, cfg.student.options)]
        for s in self.students:  # fail now on bad student names / options
            build_model(s.model, self.data.input_shape, self.data.num_classes, s.options)
        self.distiller: Distiller | None = None
        self._teacher_cache: torch.Tensor | None = None
        self.student_seed, self.student_arch, self.student_index = -1, "", 0

    def _draw_student(self, options: dict[str, Any]) -> tuple[int, int]:
        seeds = list(self.ecfg.seeds)
        if "student_seed" in options:
            seed = int(options["student_seed"])
        elif seeds:
            seed = int(seeds[self.np_random.integers(len(seeds))])
        else:
            seed = int(self.np_random.integers(1000, 2**31 - 1))
        arch = int(options.get("student", self.np_random.integers(len(self.students))))
        return seed, arch

    def new_distiller(self, seed: int, arch: int, strategy: Any = None) -> Distiller:
        """A fresh student (initial weights from ``seed``) in a Distiller; the teacher's training
        logits are computed once and reused by every episode. ``strategy``: a classic temperature
        strategy (reference runs) instead of the agent's temperatures."""
        spec = self.students[arch]
        torch.manual_seed(seed)
        student = build_model(spec.model, self.data.input_shape, self.data.num_classes, spec.options)
        dcfg = self.cfg.distill if spec.lr is None else dataclasses.replace(self.cfg.distill, lr=spec.lr)
        d = Distiller(dcfg, self.data, student, self.teacher, strategy, seed=seed, device=self.device,
                      external_temperature=strategy is None, teacher_cache=self._teacher_cache)
        self._teacher_cache = d.teacher_cache
        return d

    def fill_teacher_cache(self) -> None:
        """Compute the teacher's training-split logits now (otherwise the first episode does)."""
        if self._teacher_cache is None and not self.data.augmented:
            self._teacher_cache = predict_logits(self.teacher, self.data.train, self.data)

    def start_episode(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        """``gym.Env.reset``'s seeding, then a fresh student; returns the reset info."""
        super().reset(seed=seed)
        student_seed, arch = self._draw_student(options or {})
        self.distiller = self.new_distiller(student_seed, arch)
        self.student_seed, self.student_index, self.student_arch = student_seed, arch, self.students[arch].model
        return {"student_seed": student_seed, "student": self.student_arch}

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

    def steps_per_episode(self) -> int:
        return (len(self.data.train) // self.cfg.distill.batch_size) * self.cfg.distill.epochs


def observation_box(shape: tuple[int, ...]) -> gym.spaces.Box:
    return gym.spaces.Box(0.0, 1.0, shape, np.float32)
