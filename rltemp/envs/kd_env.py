"""``rltemp/KDTemperature-v0``: the KD training loop as a Gymnasium environment, one decision per
instance and optimiser step.

One ``step(action)`` is one optimiser step of the student on one mini-batch of B instances, at the
per-instance temperatures the action sets (:class:`~rltemp.envs.base.StudentRunsEnv` for the
students and the shared Distiller). A constant action equal to T reproduces ``rltemp distill
--temperature fixed:T`` (tested).

- Observation ``Box(0, 1, (B, F), float32)``: the features of the batch the action will apply to
  (:mod:`rltemp.kd.features`), computed from the logits of the forward pass that the step then
  reuses for its loss.
- Action ``Box(-1, 1, (B,))`` (or ``(B, 2)`` with ``env.pair``: teacher and student temperature).
  Without ``env.base_policy`` it is the temperature, on a log scale:
  T = exp(log T_min + (a + 1) / 2 · (log T_max − log T_min)). With ``env.base_policy`` (how the
  per-instance *modulator* of a factorised policy is trained, :mod:`rltemp.kd.policy`), the base
  temperature of each epoch comes from that policy's schedule head and the action modulates it:
  T_i = T_sched · exp(log(max_multiplier) · (a_i − mean a)). Out-of-range values are clipped;
  NaN / inf entries become ``env.default_temperature`` (resp. no modulation) and are counted in
  ``info["nan_actions"]``.
- Reward: validation gain every ``env.reward_interval`` steps and at the last step
  (:mod:`rltemp.envs.rewards`), so an episode's rewards sum to scale · (final − initial) signal on
  a fixed validation subset. ``info["instance_rewards"]`` (B,) holds the rewards delivered now to
  this step's B decisions (they sum, over an episode, to the episode's reward); at an interval's
  end ``info["interval_instance_rewards"]`` (k, B) holds the calibrated decomposition of the
  interval's reward over its k·B decisions. Under ``influence`` calibration each step's zero-sum
  alignment term is delivered at once and the interval's reward, R / B per instance, at its end.
- The episode ends after ``distill.epochs`` epochs: that budget is part of the task and progress is
  observed, so the end is ``terminated`` (not a time-limit truncation), and the final observation
  is real (the last batch's features under the final student).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltemp.config import Config, EnvConfig
from rltemp.data.base import Split
from rltemp.envs.base import StudentRunsEnv, observation_box
from rltemp.envs.rewards import (
    CALIBRATIONS,
    InputCapture,
    alignment,
    centred,
    evaluate_with_gradient,
    last_linear,
    needs_alignment,
)
from rltemp.kd.features import FeatureInput, GlobalState, check_features, compute_features
from rltemp.kd.policy import action_to_temperature, centred_log_multiplier, load_schedule_base
from rltemp.kd.trainer import evaluate


def instance_temperatures(a: torch.Tensor, ecfg: EnvConfig, t_sched: float | None) -> tuple[torch.Tensor, int]:
    """Temperatures from the instances' actions (one decision unit: a batch, or an epoch's training
    split), and how many actions were not finite.

    Without a schedule (``t_sched`` None) the action is the temperature on a log scale (non-finite
    entries get ``ecfg.default_temperature``); with one, it modulates it:
    T_i = T_sched · exp(log(max_multiplier) · (a_i − mean a)) (non-finite entries: no modulation)."""
    bad = ~torch.isfinite(a)
    n_bad = int(bad.sum())
    a = torch.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
    if t_sched is not None:
        return (t_sched * torch.exp(centred_log_multiplier(a, ecfg.max_multiplier))).clamp(ecfg.t_min, ecfg.t_max), n_bad
    t = action_to_temperature(a, ecfg.t_min, ecfg.t_max)
    if n_bad:
        t = torch.where(bad, torch.full_like(t, ecfg.default_temperature), t)
    return t, n_bad


class KDTemperatureEnv(StudentRunsEnv):
    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False) -> None:
        super().__init__(config, overrides, progress)
        self.features = check_features(list(self.ecfg.features))
        CALIBRATIONS.get(self.ecfg.calibration)
        self.base = load_schedule_base(self.ecfg.base_policy) if self.ecfg.base_policy else None
        g = np.random.default_rng(0)  # fixed validation subset, the same for every episode
        n = min(self.ecfg.val_subset, len(self.data.val))
        idx = torch.from_numpy(np.sort(g.permutation(len(self.data.val))[:n])).to(self.data.val.y.device)
        self.val_subset = Split(self.data.val.x[idx], self.data.val.y[idx])
        self.batch_size = self.cfg.distill.batch_size
        b, f = self.batch_size, len(self.features)
        self.observation_space = observation_box((b, f))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (b, 2) if self.ecfg.pair else (b,), np.float32)
        self.influence = needs_alignment(self.ecfg.calibration)
        self._capture: InputCapture | None = None

    # ------------------------------------------------------------------ helpers
    def _signal(self) -> float:
        d = self.distiller
        assert d is not None
        if self.influence:
            acc, loss, self._g_w, self._g_b = evaluate_with_gradient(d.student, self._capture, self.val_subset, self.data)
        else:
            acc, loss = evaluate(d.student, self.val_subset, self.data)
        self.last_eval = (acc, loss)
        return self.signal(acc, loss)

    def _next_batch(self) -> bool:
        """Fetch the next batch (ending the epoch when the current one is exhausted) and forward it;
        False when the episode is over."""
        d = self.distiller
        assert d is not None
        while True:
            if self._it is None:
                self._it = d.epoch_batches()
                if self.base is not None:  # one schedule decision per epoch, as at distill time
                    self._t_sched = self.base.schedule_temperature(GlobalState(d.progress, d.last_val_acc, d.loss_ema))
            try:
                self._x, self._y, self._idx = next(self._it)
                break
            except StopIteration:
                self._it = None
                self._epoch_stats = d.end_epoch()
                if d.done:
                    return False
        self._logits = d.forward_batch(self._x, self._idx)
        if self.influence:
            self._h = self._capture.h.float().flatten(1)
            self._logits[0].register_hook(self._keep_grad)
        return True

    def _keep_grad(self, grad: torch.Tensor) -> None:
        self._delta = grad.detach()

    def _observation(self) -> np.ndarray:
        d = self.distiller
        z_s, z_t = self._logits
        inp = FeatureInput(z_s.detach(), z_t, self._y, d.progress, d.last_val_acc, d.loss_ema)
        return compute_features(self.features, inp).cpu().numpy()

    def _final_observation(self) -> np.ndarray:
        """The last batch's features under the final student (real, with progress = 1)."""
        d = self.distiller
        with torch.no_grad():
            self._logits = d.forward_batch(self._x, self._idx)
        return self._observation()

    def _temperatures(self, a: torch.Tensor) -> tuple[torch.Tensor, int]:
        return instance_temperatures(a, self.ecfg, self._t_sched if self.base is not None else None)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        info = self.start_episode(seed, options)
        if self._capture is not None:
            self._capture.remove()
        if self.influence:
            self._capture = InputCapture(last_linear(self.distiller.student, self.data.num_classes))
        self._it = None
        self._epoch_stats = None
        self._interval_kd: list[torch.Tensor] = []
        self._interval_align: list[torch.Tensor] = []
        self._signal_prev = self._signal()
        self.initial_signal = self._signal_prev
        self._next_batch()
        return self._observation(), info

    def step(self, action: Any):  # noqa: ANN201
        d = self.running_distiller()
        a = self.action_tensor(action)
        t, n_bad = self._temperatures(a)
        z_s, z_t = self._logits
        conf = torch.softmax(z_t.float(), -1).max(-1).values
        p_s = torch.softmax(z_s.detach().float(), -1)
        p_true, correct = p_s.gather(1, self._y[:, None])[:, 0], p_s.argmax(-1) == self._y
        res = d.train_step(self._x, self._y, self._idx, temperature=t, logits=self._logits)
        self._interval_kd.append(res.kd)
        instance = torch.zeros(self.batch_size, dtype=torch.float64)
        if self.influence:
            c = alignment(self._delta, self._h, self._g_w, self._g_b, rank=self.ecfg.credit_rank).cpu()
            self._interval_align.append(c)
            instance += centred(c, self.ecfg.credit_scale)
        info: dict[str, Any] = {
            "temperature": res.temperature.cpu().numpy(),
            "kd_loss": res.kd.cpu().numpy(),
            "ce_loss": res.ce.cpu().numpy(),
            "teacher_confidence": conf.cpu().numpy(),
            "student_correct": correct.cpu().numpy(),
            "student_p_true": p_true.cpu().numpy(),
            "nan_actions": n_bad,
            "step": d.step_count,
        }
        more = self._next_batch()
        terminated = not more
        info["epoch"] = d.epoch
        reward = 0.0
        if d.step_count % self.ecfg.reward_interval == 0 or terminated:
            sig = self._signal()
            reward = self.ecfg.reward_scale * (sig - self._signal_prev)
            self._signal_prev = sig
            kd = torch.stack(self._interval_kd).cpu()
            align = torch.stack(self._interval_align) if self.influence else None
            per = CALIBRATIONS.get(self.ecfg.calibration)(reward, kd, align, self.ecfg.credit_scale)
            info["interval_instance_rewards"] = per.numpy()
            info["val_acc"], info["val_loss"] = self.last_eval
            # delivered now: the interval's decomposition, less what influence already delivered per step
            delivered = centred(align, self.ecfg.credit_scale).sum(0) if self.influence else 0.0
            instance += per.sum(0) - delivered
            self._interval_kd, self._interval_align = [], []
        info["instance_rewards"] = instance.numpy()
        if self._epoch_stats is not None:
            info["epoch_val_acc"] = self._epoch_stats.val_acc
            self._epoch_stats = None
        obs = self._final_observation() if terminated else self._observation()
        if self.ecfg.end_as_truncation:  # ablation only (see EnvConfig)
            return obs, float(reward), False, terminated, info
        return obs, float(reward), terminated, False, info
