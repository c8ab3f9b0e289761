"""``rltemp/KDSchedule-v0``: the KD training loop as a Gymnasium environment, one decision per epoch.

An epoch-level schedule head (:class:`~rltemp.kd.forms.EpochSchedule`) is trained here. One
``step(action)`` runs one whole epoch of the student (:class:`~rltemp.envs.base.StudentRunsEnv`:
the same Distiller as ``rltemp distill``) at the temperature the action sets. An episode has
``distill.epochs`` decisions, so with γ = 1 the return of an early decision is the whole run's
validation gain: credit crosses the episode, which a per-KD-step decision with γ = 0.95 (a
20-step horizon in a 2 310-step episode) cannot do.

- Observation ``Box(0, 1, (F,), float32)``: the global features ``env.schedule_features``
  (:data:`~rltemp.kd.features.GLOBAL_FEATURES`; default progress and last validation accuracy)
  at the start of the epoch. The last action is deliberately not observable: it made a
  bang-bang schedule easy to represent in the probes.
- Action ``Box(-1, 1, (1,))``: T = exp(log T_min + (a + 1) / 2 · (log T_max − log T_min)).
- Reward: scale · Δ validation accuracy over the epoch on the **full validation split** (the
  evaluation the Distiller makes at every epoch end anyway, so rewards cost nothing extra). With
  ``env.reward_reference`` (``fixed:4``, or ``grid``: the best of fixed T ∈ {1, 2, 4, 8} on this
  student's validation), the same student (pair and seed) is also distilled once with that SPEC and
  the reward is the gain *over that reference curve*, which removes the seed-to-seed variance of the
  learning curve from the return — and with ``grid`` makes "do no harm" the baseline: only beating
  what a grid search would pick earns. References are computed on first use and cached per student
  (in memory, and on disk in ``$RLTEMP_CACHE/references/``, keyed by everything that determines the
  curve: data, teacher, student, recipe, SPEC and seed).
  With γ = 1 the rewards telescope to scale · (final − initial) validation accuracy (over the
  reference's): the quantity the grid is selected on. (−validation loss ranks schedules worse:
  a bang-bang T = 10 / 1 schedule buys loss, not accuracy — ``benchmarks/reward_ranking.py``.)
- The episode ends after the epoch budget with ``terminated=True`` and a real final observation
  (progress 1, final validation accuracy). ``reset``'s ``info`` carries the student and the
  validation accuracy the rewards count from (the reference run's, with a reference); ``step``'s the temperature, validation accuracy
  and loss, the epoch, and the student (its seed, its pair's name and index in ``env.pool``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltemp.config import Config
from rltemp.envs.base import StudentRunsEnv, observation_box
from rltemp.errors import ConfigError
from rltemp.kd.features import GLOBAL_FEATURES, GlobalState, check_features, global_features
from rltemp.kd.forms import action_to_temperature
from rltemp.kd.pipeline import combine_temperatures
from rltemp.kd.strategies import GRID, StrategyContext, build_strategy
from rltemp.kd.trainer import evaluate
from rltemp.paths import atomic_write_bytes, cache_dir


class KDScheduleEnv(StudentRunsEnv):
    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False, reference_dir: str | Path | None = None, pair_seed: int | None = None) -> None:
        """``reference_dir``: where reference curves are cached (default ``$RLTEMP_CACHE/references``);
        ``pair_seed``: see :class:`~rltemp.envs.base.StudentRunsEnv`."""
        super().__init__(config, overrides, progress, pair_seed)
        self.features = check_features(list(self.ecfg.schedule_features), "env.schedule_features", GLOBAL_FEATURES)
        for spec in self.reference_specs():  # fail now on a bad SPEC
            build_strategy(spec, StrategyContext(self.data.num_classes, self.cfg.distill.epochs))
        self.reference_dir = Path(reference_dir) if reference_dir is not None else cache_dir("references")
        self._references: dict[tuple[str, int, int], list[float]] = {}
        self._tsha: dict[int, str] = {}
        self.observation_space = observation_box((len(self.features),))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    @property
    def steps(self) -> int:
        """Decisions per episode: one per epoch (every pair of the pool with the same budget)."""
        epochs = {p.cfg.distill.epochs for p in self.pairs}
        if len(epochs) > 1:
            raise ConfigError(f"env.pool: one decision per epoch needs the same distill.epochs for every pair, got "
                              f"{sorted(epochs)} (a run-level policy, agent.decision: run, takes any)")
        return epochs.pop()

    # ------------------------------------------------------------------ helpers
    def _state(self) -> GlobalState:
        return self.distiller.state()

    def _observation(self) -> np.ndarray:
        return global_features(self.features, self._state()).numpy()

    def reference_specs(self) -> list[str]:
        """The runs behind ``env.reward_reference``: a SPEC, or ``grid``'s four fixed temperatures."""
        ref = self.ecfg.reward_reference
        return list(GRID) if ref == "grid" else ([ref] if ref else [])

    def reference_curve(self, seed: int, index: int) -> list[float]:
        """Validation accuracy before training and after every epoch of the reference run of this
        student (pair ``index``, ``seed``): the SPEC's run, or with ``grid`` the run of the fixed
        temperature of {1, 2, 4, 8} that ends highest on validation — the constant a grid search would
        pick for this student, so that only beating it earns a positive return."""
        curves = [self._curve(spec, seed, index) for spec in self.reference_specs()]
        return max(curves, key=lambda c: c[-1])  # the first of equals, in GRID's order

    def _curve(self, spec: str, seed: int, index: int) -> list[float]:
        """One SPEC's validation curve of this student (cached in memory, and as JSON in ``reference_dir``)."""
        key = (spec, index, seed)
        if key in self._references:
            return self._references[key]
        p = self.pairs[index]
        ident = {"data": asdict(p.cfg.data), "teacher": asdict(p.cfg.teacher), "distill": asdict(p.cfg.distill),
                 "student": asdict(p.cfg.student), "reference": spec, "reward": "val_acc", "seed": seed,
                 "teacher_sha1": self._teacher_sha1(index)}
        digest = hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.reference_dir / f"{p.cfg.student.model}-s{seed}-{digest}.json"
        if path.exists():
            try:
                curve = json.loads(path.read_text())
                if isinstance(curve, list) and len(curve) == p.cfg.distill.epochs + 1:
                    self._references[key] = [float(v) for v in curve]
                    return self._references[key]
            except (ValueError, TypeError):
                pass  # a damaged cache file is computed again (and rewritten)
        d = self.new_distiller(seed, index, build_strategy(spec, StrategyContext(p.data.num_classes, p.cfg.distill.epochs)))
        curve = [evaluate(d.student, d.data.val, d.data)[0]]
        while not d.done:
            curve.append(d.run_epoch().val_acc)
        self._references[key] = curve
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, json.dumps(curve).encode())
        return curve

    def _teacher_sha1(self, index: int) -> str:
        """The pair's teacher's weights, so a retrained teacher never meets a stale reference curve."""
        if index not in self._tsha:
            h = hashlib.sha1()
            for v in self.pairs[index].teacher.state_dict().values():
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            self._tsha[index] = h.hexdigest()
        return self._tsha[index]

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        info = self.start_episode(seed, options)
        d = self.distiller
        self._ref = self.reference_curve(self.student_seed, self.pair_index) if self.ecfg.reward_reference else None
        self._acc_prev = self._ref[0] if self._ref else evaluate(d.student, d.data.val, d.data)[0]
        return self._observation(), {**info, "val_acc": self._acc_prev}

    def run_epoch(self, action: Any) -> tuple[float, dict[str, Any]]:
        """One epoch at the temperature ``action`` (1,) sets: its reward and ``info``."""
        d = self.running_distiller()
        a = torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(-1)
        if a.shape != (1,):
            raise ValueError(f"action must have shape (1,), got {tuple(np.asarray(action).shape)}")
        finite = bool(torch.isfinite(a).all())
        t_sched = float(action_to_temperature(torch.nan_to_num(a, nan=0.0), self.ecfg.t_min, self.ecfg.t_max)[0])
        for x, y, idx in d.epoch_batches():
            d.train_step(x, y, idx, temperature=torch.full((len(y),), t_sched, device=y.device))
        epoch = d.epoch
        stats = d.end_epoch()
        reward = self.ecfg.reward_scale * (stats.val_acc - self._acc_prev)
        if self._ref is not None:
            reward -= self.ecfg.reward_scale * (self._ref[epoch + 1] - self._ref[epoch])
        self._acc_prev = stats.val_acc
        t_all = combine_temperatures([stats.temperature_stats])  # the Distiller's statistics of this epoch's T
        info = {"temperature": t_sched, "temperature_mean": t_all["mean"], "temperature_std": t_all["std"],
                "val_acc": stats.val_acc, "val_loss": stats.val_loss, "epoch": epoch, "nan_actions": int(not finite),
                "kd_steps": d.step_count,
                **self.student_info()}
        return float(reward), info

    def step(self, action: Any):  # noqa: ANN201
        reward, info = self.run_epoch(action)
        return self._observation(), reward, self.distiller.done, False, info
