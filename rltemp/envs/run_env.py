"""``rltemp/KDRunSchedule-v0``: one schedule decision per student run (a two-step episode).

The run-level schedule head of a temperature policy (``"decision": "run"``,
:func:`rltemp.kd.policy.run_temperature`) is trained here. Per-epoch decisions share one noisy run
return among thirty Gaussian draws, and on a pool of students that want different schedules they
learned one schedule for all (``benchmarks/RESULTS.md``, ablations T–Y and the privileged-actor
diagnostics). Here a policy makes two decisions per run, each credited with the run's whole gain:

1. ``reset`` observes ``[0, 0, …]`` (nothing is known yet); the action's first number sets the
   temperature of the first epoch (its second number is unused), and ``step`` runs that epoch;
2. the observation is then ``[1, features]``, the global features ``env.run_features`` of the
   state after the first epoch (e.g. its validation accuracy: how fast this student learns), and
   the action (a_start, a_end) sets every remaining epoch's temperature by
   :func:`~rltemp.kd.policy.run_action` at that epoch's progress; ``step`` runs them all and the
   episode terminates.

With ``env.run_first_temperature`` > 0 the first epoch runs at that temperature instead and is part
of ``reset`` (its reward is added to the decision's): an episode is then one decision, a contextual
bandit, and the observation is the features alone (no flag).

With ``env.run_probe`` > 0 the policy looks before it leaps: ``reset`` distils a throwaway copy of
the fresh student for that fraction of an epoch at ``env.run_probe_temperature``
(:meth:`~rltemp.kd.trainer.Distiller.probe`; same initial weights, batch order and learning rate as
the run) and observes the features of the copy's state (its validation accuracy, ...; progress 0).
The one decision (a_start, a_end) then sets every epoch's temperature, the first included, and
``step`` runs the whole run: one decision per run, made knowing how fast this student learns. The
probe costs that fraction of one epoch per run (in training it is cached per student and seed).

Rewards are those of :class:`~rltemp.envs.schedule_env.KDScheduleEnv` (the epochs' validation gains,
over the reference run with ``env.reward_reference``), summed over the epochs each step runs; the
same Distiller, students, seeds and reference cache. ``info`` adds ``temperatures`` (every epoch
this step ran) and, after the second step, the decision's ``t_start`` and ``t_end`` and the
features it read (``decision_features``).
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
from rltemp.kd.policy import action_to_temperature, run_action, run_temperature, temperature_to_action


def run_schedule(actions: Any, epochs: int, t_min: float, t_max: float, first: float = 0.0,
                 probe: bool = False) -> list[float]:
    """The temperatures of every epoch for a run's decisions ``actions``: (2, 2), the first epoch's
    then (a_start, a_end); or, with a fixed ``first`` temperature, (1, 2), (a_start, a_end) alone;
    or, decided from a ``probe``, (1, 2) that sets every epoch. Epoch k sits at progress k / epochs
    (equal batches per epoch)."""
    a = torch.as_tensor(np.asarray(actions, np.float32)).reshape(-1, 2)
    if probe:
        return [run_temperature(a[-1], k / epochs, t_min, t_max) for k in range(epochs)]
    if not first:
        first = float(action_to_temperature(a[0, :1], t_min, t_max)[0])
    rest = [run_temperature(a[-1], k / epochs, t_min, t_max) for k in range(1, epochs)]
    return [first, *rest]


class KDRunScheduleEnv(KDScheduleEnv):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.critic_features:
            raise ConfigError("env.critic_features: the run-level schedule env has no critic-only columns")
        self.features = check_features(list(self.ecfg.run_features), "env.run_features", GLOBAL_FEATURES)
        self.first_temperature = float(self.ecfg.run_first_temperature)  # 0: the policy chooses it
        self.probe = float(self.ecfg.run_probe)  # > 0: one decision for every epoch, from a probe
        self.flag = 0 if self.first_temperature or self.probe else 1  # the "decided" column in front of the features
        self._probes: dict[tuple[int, int], GlobalState] = {}
        self.steps = 1 + self.flag  # decisions per episode
        if self.cfg.distill.epochs < 2:
            raise ConfigError(f"distill.epochs must be >= 2 for a run-level decision (one epoch to observe, then "
                              f"the schedule of the rest), got {self.cfg.distill.epochs}")
        self.observation_space = observation_box((self.flag + len(self.features),))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self._stage = 0

    def _run_observation(self, decided: bool) -> np.ndarray:
        if not decided:
            return np.zeros(self.observation_space.shape, np.float32)
        return np.concatenate([[1.0] * self.flag, global_features(self.features, self._state()).numpy()]).astype(np.float32)

    def probe_state(self) -> GlobalState:
        """The state the probe of this episode's fresh student reaches (cached per architecture and seed)."""
        key = (self.student_index, self.student_seed)
        if key not in self._probes:
            acc, loss_ema = self.distiller.probe(self.probe, self.ecfg.run_probe_temperature)
            self._probes[key] = GlobalState(0.0, acc, loss_ema)
        return self._probes[key]

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        _, info = super().reset(seed=seed, options=options)
        self._stage, self._carried, self._first = 0, 0.0, []
        if self.probe:  # look first, then one decision for the whole run
            self._stage = 1
            self._decided_on = global_features(self.features, self.probe_state()).numpy().astype(np.float32)
            return self._decided_on, info
        if self.first_temperature:  # the first epoch is not a decision: run it now, carry its reward
            a0 = np.array([temperature_to_action(self.first_temperature, self.ecfg.t_min, self.ecfg.t_max)], np.float32)
            _, self._carried, *_, epoch0 = super().step(a0)
            self._first, self._stage = [epoch0["temperature"]], 1
            self._decided_on = self._run_observation(True)
            return self._decided_on, info
        return self._run_observation(False), info

    def step(self, action: Any):  # noqa: ANN201
        a = np.asarray(action, dtype=np.float32)
        if a.shape != (2,):
            raise ValueError(f"action must have shape (2,), got {a.shape}")
        self.running_distiller()
        if self._stage == 0:
            _, reward, terminated, truncated, info = super().step(a[:1])
            self._stage = 1
            info = {**info, "temperatures": [info["temperature"]]}
            self._decided_on = self._run_observation(True)
            return self._decided_on, reward, terminated, truncated, info
        total, temps, nans = self._carried, [], 0
        terminated = truncated = False
        while not (terminated or truncated):
            _, reward, terminated, truncated, info = super().step(run_action(torch.as_tensor(a), self.distiller.progress))
            total += reward
            temps.append(info["temperature"])
            nans += info["nan_actions"]
        info = {**info, "temperatures": self._first + temps, "t_start": temps[0], "t_end": temps[-1], "nan_actions": nans,
                "decision_features": dict(zip(self.features, self._decided_on[self.flag:].tolist(), strict=True))}
        return self._run_observation(True), float(total), terminated, truncated, info
