"""``rltemp/KDRunSchedule-v0``: one schedule decision per student run, made from a probe.

A run-level schedule head (:class:`~rltemp.kd.forms.ProbeSchedule`) is trained here. Per-epoch
decisions share one noisy run return among thirty Gaussian draws, and on a pool of students that
want different schedules they learned one schedule for all (``benchmarks/RESULTS.md``, ablations
T–Y); one decision per run, credited with the run's whole gain, learned a schedule per kind of
student (ablations Z6–Z9). An episode is one step, a contextual bandit:

- ``reset`` starts a fresh student and *probes* it: a throwaway copy is distilled for ``env.run_probe``
  of an epoch at ``env.run_probe_temperature`` (:meth:`~rltemp.kd.trainer.Distiller.probe`: the same
  initial weights, batch order and learning rate as the run, then discarded); the observation is the
  global features ``env.run_features`` of the copy's state (its validation accuracy, ...; progress 0).
  Probes are cached per student and seed.
- ``step((a_start, a_end))`` runs the whole run, epoch k at :meth:`~rltemp.kd.forms.ProbeSchedule.temperature`
  of progress k / epochs, and terminates. Its reward is the sum of the epochs' rewards of
  :class:`~rltemp.envs.schedule_env.KDScheduleEnv` (the run's validation gain over the reference
  run's); its final observation is the state after the run. ``info`` adds ``temperatures`` (every epoch), ``t_start``, ``t_end`` and the features the
  decision read (``decision_features``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltemp.envs.base import observation_box
from rltemp.envs.schedule_env import KDScheduleEnv
from rltemp.errors import ConfigError
from rltemp.kd.features import GLOBAL_FEATURES, GlobalState, check_features, global_features
from rltemp.kd.forms import ProbeSchedule


class KDRunScheduleEnv(KDScheduleEnv):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.features = check_features(list(self.ecfg.run_features), "env.run_features", GLOBAL_FEATURES)
        short = [p.name for p in self.pairs if p.cfg.distill.epochs < 2]
        if short:
            raise ConfigError(f"distill.epochs must be >= 2 for a run-level decision ({', '.join(short)})")
        self._probes: dict[tuple[int, int], GlobalState] = {}
        self.observation_space = observation_box((len(self.features),))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (ProbeSchedule.outputs,), np.float32)

    @property
    def steps(self) -> int:
        """Decisions per episode: one."""
        return 1

    def probe_state(self) -> GlobalState:
        """The state the probe of this episode's fresh student reaches (cached per architecture and seed)."""
        key = (self.pair_index, self.student_seed)
        if key not in self._probes:
            self._probes[key] = self.distiller.probe(self.ecfg.run_probe, self.ecfg.run_probe_temperature)
        return self._probes[key]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        _, info = super().reset(seed=seed, options=options)
        self._decided_on = global_features(self.features, self.probe_state()).numpy().astype(np.float32)
        return self._decided_on, info

    def step(self, action: Any):  # noqa: ANN201
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (ProbeSchedule.outputs,):
            raise ValueError(f"action must have shape (2,), got {a.shape}")
        d = self.running_distiller()
        total, temps, nans = 0.0, [], 0
        while not d.done:
            reward, info = self.run_epoch(ProbeSchedule.action(torch.as_tensor(a), d.progress))
            total += reward
            temps.append(info["temperature"])
            nans += info["nan_actions"]
        info = {**info, "temperatures": temps, "t_start": temps[0], "t_end": temps[-1], "nan_actions": nans,
                "decision_features": dict(zip(self.features, self._decided_on.tolist(), strict=True))}
        final = global_features(self.features, self._state()).numpy().astype(np.float32)  # the state after the run
        return final, float(total), True, False, info
