"""``rltemp/KDRunSchedule-v0``: the KD training loop as a Gymnasium environment, one schedule
decision per student run, made from a probe.

The schedule head of a temperature policy (:class:`~rltemp.kd.forms.ProbeSchedule`) is trained
here, on the very Distiller that ``rltemp distill`` uses (:class:`~rltemp.envs.base.StudentRunsEnv`).
One decision per run, credited with the run's whole gain, learned a schedule per kind of student
where thirty per-epoch decisions sharing one noisy return learned one schedule for all
(``benchmarks/RESULTS.md``, ablations T–Z9). An episode is one step, a contextual bandit:

- ``reset`` starts a fresh student (a pair of ``env.pool`` and a seed) and *probes* it: a throwaway
  copy is distilled for ``env.run_probe`` of an epoch at ``env.run_probe_temperature``
  (:meth:`~rltemp.kd.trainer.Distiller.probe`: the same initial weights, batch order and learning
  rate as the run, then discarded). The observation ``Box(0, 1, (F,))`` is the global features
  ``env.run_features`` of the copy's state (:mod:`rltemp.kd.features`: scale-free statistics of its
  validation pass against the teacher's). Probes are cached per student.
- ``step((a_start, a_end))`` runs the whole run, epoch k at
  :meth:`~rltemp.kd.forms.ProbeSchedule.temperature` of progress k / epochs, and terminates with a
  real final observation (the features of the state after the run).
- Reward: scale · the run's gain in validation accuracy (the evaluation the Distiller makes at every
  epoch end anyway) over the gain of the reference run of the same student
  (:mod:`rltemp.envs.references`; ``env.reward_reference``, ``grid`` by default in the pool preset:
  only beating the best constant temperature earns); ``""``: the raw gain. The test split is never
  read. ``info``: every epoch's temperature, the decision's ``t_start`` / ``t_end``, the features it
  read (``decision_features``), the final validation accuracy, the student (seed, pair).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltemp.config import Config
from rltemp.envs.base import StudentRunsEnv, observation_box
from rltemp.envs.references import References
from rltemp.errors import ConfigError
from rltemp.kd.features import GLOBAL_FEATURES, GlobalState, check_features, global_features
from rltemp.kd.forms import ProbeSchedule, Support, action_to_temperature
from rltemp.kd.trainer import evaluate


class KDRunScheduleEnv(StudentRunsEnv):
    steps = 1  # decisions per episode

    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False, reference_dir: str | Path | None = None, pair_seed: int | None = None) -> None:
        """``reference_dir``: where reference curves are cached (default ``$RLTEMP_CACHE/references``);
        ``pair_seed``: see :class:`~rltemp.envs.base.StudentRunsEnv`."""
        super().__init__(config, overrides, progress, pair_seed)
        self.features = check_features(list(self.ecfg.run_features), "env.run_features", GLOBAL_FEATURES)
        short = [p.name for p in self.pairs if p.cfg.distill.epochs < 2]
        if short:
            raise ConfigError(f"distill.epochs must be >= 2 for a run-level decision ({', '.join(short)})")
        self.references = References(self.ecfg.reward_reference, self.pairs, self.new_distiller, reference_dir)
        self._probes: dict[tuple[int, int], GlobalState] = {}
        self.observation_space = observation_box((len(self.features),))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ProbeSchedule.outputs,), np.float32)

    def probe_state(self) -> GlobalState:
        """The state the probe of this episode's fresh student reaches (cached per pair and seed)."""
        key = (self.pair_index, self.student_seed)
        if key not in self._probes:
            self._probes[key] = self.distiller.probe(self.ecfg.run_probe, self.ecfg.run_probe_temperature)
        return self._probes[key]

    def support(self, fallback: float) -> Support:
        """The range of each observed feature over the probes of every training student (each pair ×
        ``env.seeds``), with the ``fallback`` temperature for a student outside it."""
        obs = []
        for index in range(len(self.pairs)):
            for seed in self.ecfg.seeds:
                self.start_episode(None, {"student_seed": seed, "pair": index})
                obs.append(self._observation(self.probe_state()))
        self.distiller = None
        box = np.stack(obs)
        return Support(box.min(0).tolist(), box.max(0).tolist(), float(fallback), len(obs))

    def _observation(self, state: GlobalState) -> np.ndarray:
        return global_features(self.features, state).numpy().astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        info = self.start_episode(seed, options)
        d = self.distiller
        self._ref = self.references.curve(self.student_seed, self.pair_index) if self.ecfg.reward_reference else None
        self._acc0 = self._ref[0] if self._ref else evaluate(d.student, d.data.val, d.data)[0]
        self._decided_on = self._observation(self.probe_state())
        return self._decided_on, {**info, "val_acc": self._acc0}

    def _epoch(self, action: torch.Tensor) -> tuple[float, bool]:
        """One epoch at the temperature ``action`` (1,) maps to; its temperature and whether it was finite."""
        d = self.distiller
        finite = bool(torch.isfinite(action).all())
        t = float(action_to_temperature(torch.nan_to_num(action, nan=0.0), self.ecfg.t_min, self.ecfg.t_max)[0])
        for x, y, idx in d.epoch_batches():
            d.train_step(x, y, idx, temperature=torch.full((len(y),), t, device=y.device))
        d.end_epoch()
        return t, finite

    def step(self, action: Any):  # noqa: ANN201
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (ProbeSchedule.outputs,):
            raise ValueError(f"action must have shape (2,), got {a.shape}")
        d = self.running_distiller()
        temps, nans = [], 0
        while not d.done:
            t, finite = self._epoch(ProbeSchedule.action(torch.as_tensor(a), d.progress))
            temps.append(t)
            nans += int(not finite)
        gain = d.last_val_acc - self._acc0
        if self._ref is not None:
            gain -= self._ref[-1] - self._ref[0]
        info = {"temperatures": temps, "t_start": temps[0], "t_end": temps[-1], "nan_actions": nans,
                "val_acc": d.last_val_acc, "kd_steps": d.step_count, **self.student_info(),
                "decision_features": dict(zip(self.features, self._decided_on.tolist(), strict=True))}
        return self._observation(d.state()), float(self.ecfg.reward_scale * gain), True, False, info
