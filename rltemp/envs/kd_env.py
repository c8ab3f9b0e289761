"""``rltemp/KDTemperature-v0``: the KD training loop as a Gymnasium environment.

One ``step(action)`` is one optimiser step of the student on one mini-batch of B instances, at the
per-instance temperatures the action sets. It drives the very :class:`~rltemp.kd.trainer.Distiller`
that ``rltemp distill`` uses (no second training loop): a constant action equal to T reproduces
``rltemp distill --temperature fixed:T`` (tested).

- Observation ``Box(0, 1, (B, F), float32)``: the features of the batch the action will apply to
  (:mod:`rltemp.kd.features`), computed from the logits of the forward pass that the step then
  reuses for its loss.
- Action ``Box(-1, 1, (B,))`` (or ``(B, 2)`` with ``env.pair``: teacher and student temperature),
  mapped on a log scale: T = exp(log T_min + (a + 1) / 2 · (log T_max − log T_min)). Out-of-range
  values are clipped; NaN / inf entries become ``env.default_temperature`` and are counted in
  ``info["nan_actions"]``.
- Reward: validation gain every ``env.reward_interval`` steps (:mod:`rltemp.envs.rewards`), and at
  the last step, so an episode's rewards sum to ``scale · (final − initial)`` validation signal.
  ``info["instance_rewards"]`` (B,) holds this step's calibrated per-instance rewards;
  at an interval's end ``info["interval_instance_rewards"]`` (k, B) holds the whole interval's.
- ``reset(seed=...)`` starts a fresh student: architecture from ``env.students`` and seed from
  ``env.seeds`` (drawn with the env's seeded RNG; ``options={"student_seed": s, "student": i}``
  forces them). Episodes are truncated after ``distill.epochs`` epochs; they never terminate.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rltemp.config import Config, EnvConfig, ModelConfig, load_config
from rltemp.data.base import Split
from rltemp.envs.rewards import CALIBRATIONS, REWARDS
from rltemp.kd.features import FeatureInput, check_features, compute_features
from rltemp.kd.pipeline import get_teacher, prepare
from rltemp.kd.policy import action_to_temperature, temperature_to_action  # noqa: F401  (re-exported)
from rltemp.kd.trainer import Distiller, evaluate
from rltemp.models import build_model


class KDTemperatureEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False) -> None:
        super().__init__()
        cfg = config if isinstance(config, Config) else load_config(config, overrides or [])
        if isinstance(config, Config) and overrides:
            from rltemp.config import apply_overrides, config_from_dict

            cfg = config_from_dict(apply_overrides(config.to_dict(), overrides))
        self.cfg = cfg
        self.ecfg: EnvConfig = cfg.env
        self.features = check_features(list(self.ecfg.features))
        REWARDS.get(self.ecfg.reward)
        CALIBRATIONS.get(self.ecfg.calibration)
        # "fixed:<default>" only validates the data/model config here; the agent sets temperatures.
        self.data, self.device, _ = prepare(cfg.with_temperature("ce"))
        self.teacher = get_teacher(cfg, self.data, self.device, progress)
        self.students = list(self.ecfg.students) or [ModelConfig(cfg.student.model, cfg.student.options)]
        for s in self.students:  # fail now on bad student names / options
            build_model(s.model, self.data.input_shape, self.data.num_classes, s.options)
        g = np.random.default_rng(0)  # fixed validation subset, the same for every episode
        n = min(self.ecfg.val_subset, len(self.data.val))
        idx = torch.from_numpy(np.sort(g.permutation(len(self.data.val))[:n])).to(self.data.val.y.device)
        self.val_subset = Split(self.data.val.x[idx], self.data.val.y[idx])
        self.batch_size = cfg.distill.batch_size
        b, f = self.batch_size, len(self.features)
        self.observation_space = spaces.Box(0.0, 1.0, (b, f), np.float32)
        shape = (b, 2) if self.ecfg.pair else (b,)
        self.action_space = spaces.Box(-1.0, 1.0, shape, np.float32)
        self.distiller: Distiller | None = None
        self._teacher_cache: torch.Tensor | None = None

    # ------------------------------------------------------------------ helpers
    def _signal(self) -> float:
        assert self.distiller is not None
        acc, loss = evaluate(self.distiller.student, self.val_subset, self.data)
        self.last_eval = (acc, loss)
        return REWARDS.get(self.ecfg.reward)(acc, loss)

    def _next_batch(self) -> None:
        """Fetch the next batch (ending the epoch when the current one is exhausted), forward it."""
        d = self.distiller
        assert d is not None
        while True:
            if self._it is None:
                self._it = d.epoch_batches()
            try:
                self._x, self._y, self._idx = next(self._it)
                break
            except StopIteration:
                self._it = None
                self._epoch_stats = d.end_epoch()
                if d.done:
                    self._logits = None
                    return
        self._logits = d.forward_batch(self._x, self._idx)

    def _observation(self) -> np.ndarray:
        d = self.distiller
        if self._logits is None:  # after the last step: the final observation is not acted on
            return np.zeros(self.observation_space.shape, np.float32)
        z_s, z_t = self._logits
        inp = FeatureInput(z_s.detach(), z_t, self._y, d.progress, d.last_val_acc, d.loss_ema)
        return compute_features(self.features, inp).cpu().numpy()

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        super().reset(seed=seed)
        options = options or {}
        seeds = list(self.ecfg.seeds)
        if "student_seed" in options:
            student_seed = int(options["student_seed"])
        elif seeds:
            student_seed = int(seeds[self.np_random.integers(len(seeds))])
        else:
            student_seed = int(self.np_random.integers(1000, 2**31 - 1))
        arch = int(options.get("student", self.np_random.integers(len(self.students))))
        spec = self.students[arch]
        torch.manual_seed(student_seed)
        student = build_model(spec.model, self.data.input_shape, self.data.num_classes, spec.options)
        self.distiller = Distiller(self.cfg.distill, self.data, student, self.teacher, seed=student_seed,
                                   device=self.device, external_temperature=True, teacher_cache=self._teacher_cache)
        self._teacher_cache = self.distiller.teacher_cache  # computed once, reused by every episode
        self._it = None
        self._epoch_stats = None
        self._interval_kd: list[torch.Tensor] = []
        self._signal_prev = self._signal()
        self.initial_signal = self._signal_prev
        self.student_seed, self.student_arch = student_seed, spec.model
        self._next_batch()
        return self._observation(), {"student_seed": student_seed, "student": spec.model}

    def step(self, action: Any):  # noqa: ANN201
        d = self.distiller
        if d is None or self._logits is None:
            raise RuntimeError("call reset() before step(), and again after an episode ends")
        a = torch.as_tensor(np.asarray(action, dtype=np.float32)).to(self.device)
        if tuple(a.shape) != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {tuple(a.shape)}")
        bad = ~torch.isfinite(a)
        n_bad = int(bad.sum())
        t = action_to_temperature(torch.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0), self.ecfg.t_min, self.ecfg.t_max)
        if n_bad:
            t = torch.where(bad, torch.full_like(t, self.ecfg.default_temperature), t)
        z_s, z_t = self._logits
        conf = torch.softmax(z_t.float(), -1).max(-1).values
        correct = z_s.detach().argmax(-1) == self._y
        res = d.train_step(self._x, self._y, self._idx, temperature=t, logits=self._logits)
        self._interval_kd.append(res.kd)
        self._next_batch()
        truncated = d.done
        reward = 0.0
        info: dict[str, Any] = {
            "temperature": res.temperature.cpu().numpy(),
            "kd_loss": res.kd.cpu().numpy(),
            "ce_loss": res.ce.cpu().numpy(),
            "teacher_confidence": conf.cpu().numpy(),
            "student_correct": correct.cpu().numpy(),
            "nan_actions": n_bad,
            "step": d.step_count,
            "epoch": d.epoch,
        }
        instance = np.zeros(self.batch_size)
        if d.step_count % self.ecfg.reward_interval == 0 or truncated:
            sig = self._signal()
            reward = self.ecfg.reward_scale * (sig - self._signal_prev)
            self._signal_prev = sig
            per = CALIBRATIONS.get(self.ecfg.calibration)(reward, torch.stack(self._interval_kd).cpu())
            info["interval_instance_rewards"] = per.numpy()
            info["val_acc"], info["val_loss"] = self.last_eval
            instance = per[-1].numpy()
            self._interval_kd = []
        info["instance_rewards"] = instance
        if self._epoch_stats is not None:
            info["epoch_val_acc"] = self._epoch_stats.val_acc
            self._epoch_stats = None
        return self._observation(), float(reward), False, truncated, info
