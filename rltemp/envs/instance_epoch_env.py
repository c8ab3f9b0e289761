"""``rltemp/KDInstanceEpoch-v0``: one temperature decision per training instance and epoch.

The per-instance environment, and what online mode learns on. One ``step(action)`` runs one whole
epoch of the student (the Distiller of ``rltemp distill``, no second loop) with a temperature for
every instance of the training split, chosen at the start of the epoch. Deciding per mini-batch
instead costs an SB3 call, feature extraction and torch↔numpy traffic on every optimiser step (1.6 ×
a plain step on the default pair: the per-KD-step environment of earlier versions, RESULTS); here all
of that happens once per epoch, over the whole training split at once, and the optimiser steps run as
in a plain epoch.

- Observation ``Box(0, 1, (N, F), float32)``, N = the training split's size (× its window length L for a
  language model: every token position is one instance): each instance's
  features (``env.features``, :mod:`rltemp.kd.features`) from the logits of the last optimiser step
  that saw it (its previous epoch; before the first epoch, one inference pass of the initial
  student).
  No extra forward pass: the logits are kept as the epoch's steps make them.
- Action ``Box(-1, 1, (N,))``, once per epoch for all N instances: with ``env.base_policy`` (the
  default: the shipped policy) a modulation of that policy's schedule temperature for the epoch,
  T_i = T_sched · exp(log(max_multiplier) · (a_i − mean a)) centred over the epoch's N decisions (so
  T_sched stays their geometric mean; a transferred policy, deciding per batch, centres over its
  batch); with ``env.base_policy=""`` the temperature itself on the log scale of
  :func:`~rltemp.kd.forms.action_to_temperature`. Non-finite actions are counted and neutral (no
  modulation, or T = sqrt(t_min · t_max)).
- Reward: scale · Δ validation accuracy over the epoch on the **full validation split** (the
  evaluation the Distiller makes at every epoch end; the same pass yields the validation gradient).
  ``info["instance_rewards"]`` (N,) decomposes it over the n instances the epoch's steps saw
  (``drop_last`` leaves the rest of the split, which get 0): (R + c_i − mean c) / n, with c_i the
  cosine between instance i's update and the validation descent direction at the start of the epoch
  (:mod:`rltemp.envs.rewards`; from the gradient at each batch's logits and its penultimate features,
  kept as the steps make them; one batched product per epoch, against the validation gradient's top
  ``env.credit_rank`` directions) — scale-invariant and zero-sum, so the n rewards sum to R exactly
  (:class:`~rltemp.agents.vec_env.InstanceVecEnv` gives each slot N times its instance reward).
- The episode ends after ``distill.epochs`` epochs: ``terminated``, with a real final observation
  (the last epoch's features, progress 1). ``info`` also carries the seen instances
  (``instances``, in the order they were seen) and, in that order, their temperatures, the teacher's
  confidence and the student's true-class probability and correctness (for
  :func:`~rltemp.kd.tblog.log_decisions`), and ``epoch_val_acc``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rltemp.config import Config
from rltemp.envs.base import StudentRunsEnv, observation_box
from rltemp.envs.rewards import InputCapture, alignment, evaluate_with_gradient, influence, last_linear
from rltemp.kd.features import FeatureInput, check_features, compute_features
from rltemp.kd.forms import Head, Modulator, action_to_temperature
from rltemp.kd.policy import load_schedule_base
from rltemp.kd.trainer import predict_logits


class KDInstanceEpochEnv(StudentRunsEnv):
    def __init__(self, config: Config | str | None = None, overrides: list[str] | None = None,
                 progress: bool = False) -> None:
        super().__init__(config, overrides, progress)
        self.single_pair("rltemp/KDInstanceEpoch-v0")
        self.features = check_features(list(self.ecfg.features))
        self.base = load_schedule_base(self.ecfg.base_policy) if self.ecfg.base_policy else None
        head = Head(Modulator.decision, "", self.features, [], "", max_multiplier=self.ecfg.max_multiplier)
        self._modulator = Modulator(head, self.ecfg.t_min, self.ecfg.t_max)
        # one instance per training example, or per token position of a sequence (B windows of L)
        self.positions = int(self.data.train.y.shape[1]) if self.data.train.y.dim() == 2 else 1
        self.n = len(self.data.train) * self.positions
        self.observation_space = observation_box((self.n, len(self.features)))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.n,), np.float32)
        self._capture: InputCapture | None = None
        self._h_buf: torch.Tensor | None = None
        self._delta_buf: torch.Tensor | None = None

    def steps_per_episode(self) -> int:
        """One step per epoch."""
        return self.cfg.distill.epochs

    # ------------------------------------------------------------------ helpers
    def _instances(self, idx: torch.Tensor) -> torch.Tensor:
        """The instance rows of the split's examples ``idx``: themselves, or each window's L positions."""
        if self.positions == 1:
            return idx
        return (idx[:, None] * self.positions + torch.arange(self.positions, device=idx.device)).reshape(-1)

    @staticmethod
    def _rows(z: torch.Tensor) -> torch.Tensor:
        """Logits with one row per instance ((B, L, V) -> (B·L, V))."""
        return z.reshape(-1, z.shape[-1])

    def _validate(self) -> tuple[float, float, torch.Tensor]:
        """Accuracy, loss and logits on the full validation split, and its gradient for the credit."""
        d = self.distiller
        logits: list[torch.Tensor] = []
        acc, loss, self._g_w, self._g_b = evaluate_with_gradient(d.student, self._capture, d.data.val, d.data,
                                                                 keep_logits=logits)
        return acc, loss, torch.cat(logits)

    def instance_temperatures(self, a: torch.Tensor, t_sched: float | None) -> tuple[torch.Tensor, int]:
        """The epoch's temperatures from the instances' actions, and how many were not finite."""
        bad = ~torch.isfinite(a)
        n_bad = int(bad.sum())
        a = torch.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0)
        if t_sched is not None:
            return self._modulator.temperatures(t_sched, a), n_bad
        return action_to_temperature(a, self.ecfg.t_min, self.ecfg.t_max), n_bad

    def _features(self) -> FeatureInput:
        """What every instance looked like when last seen, with the global state of now. The
        teacher's side is computed once per episode when its logits are cached (they never change)."""
        d = self.distiller
        zt = self._rows(d.teacher_cache) if d.teacher_cache is not None else self._zt
        inp = FeatureInput(self._zs, zt, d.data.train.y.reshape(-1))
        if d.teacher_cache is not None:
            if self._teacher_side is None:
                self._teacher_side = {k: getattr(inp, k) for k in ("p_t", "p_t_top1")}
            inp.__dict__.update(self._teacher_side)  # functools.cached_property values
        return inp

    def _buffers(self, n: int, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's logit gradients (n, C) and penultimate features (n, H), written in place as the
        steps make them (no concatenation per epoch); reallocated only when a student's shapes change."""
        shape = (n, h[0].numel())
        if self._h_buf is None or self._h_buf.shape != shape or self._h_buf.device != h.device:
            self._h_buf = torch.empty(shape, device=h.device)
            self._delta_buf = torch.empty((n, self.data.num_classes), device=h.device)
        return self._delta_buf, self._h_buf

    def _keep_grad(self, rows: slice) -> Any:
        def hook(grad: torch.Tensor) -> None:
            self._delta_buf[rows] = grad.detach()
        return hook

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # noqa: ANN201
        info = self.start_episode(seed, options)
        d = self.distiller
        if self._capture is not None:
            self._capture.remove()
        self._capture = InputCapture(last_linear(d.student, self.data.num_classes))
        # what each instance looked like when last seen: the initial student's logits to begin with
        self._zs = self._rows(predict_logits(d.student, d.data.train, d.data).float())
        self._zt = (self._rows(predict_logits(self.teacher, d.data.train, d.data).float())
                    if d.teacher_cache is None else None)
        self._teacher_side: dict[str, Any] | None = None
        self._base_action = None
        if self.base is not None:  # the base schedule decides once, from a probe of the fresh student
            self._base_action = self.base.decide(d)[0]
        self._acc_prev = self._validate()[0]
        return compute_features(self.features, self._features()).cpu().numpy(), {**info, "val_acc": self._acc_prev}

    def step(self, action: Any):  # noqa: ANN201
        d = self.running_distiller()
        a = self.action_tensor(action)
        t_sched = None
        if self._base_action is not None:  # the schedule's temperature for this epoch
            t_sched = self.base.form.temperature(self._base_action, d.progress)
        g_w, g_b = self._g_w, self._g_b  # the descent direction at the epoch's start
        # the epoch's temperature for every instance (with a schedule: centred over the epoch's decisions)
        temps_all, n_bad = self.instance_temperatures(a, t_sched)
        idxs, ts, kds = [], [], []
        # the instances of the epoch's full batches (drop_last)
        seen = (len(self.data.train) // d.cfg.batch_size) * d.cfg.batch_size * self.positions
        off = 0
        for x, y, ex in d.epoch_batches():
            logits = d.forward_batch(x, ex)
            idx = self._instances(ex)
            rows = slice(off, off + len(idx))
            h = self._capture.h
            h = h.reshape(len(idx), -1) if self.positions > 1 else h.flatten(1)
            _, h_buf = self._buffers(seen, h)
            h_buf[rows] = h
            logits[0].register_hook(self._keep_grad(rows))
            res = d.train_step(x, y, ex, temperature=temps_all[idx], logits=logits)
            # what each instance looks like now, for the next epoch's features (read only after this epoch)
            self._zs[idx] = res.student_logits.float()
            if self._zt is not None:
                self._zt[idx] = res.teacher_logits.float()
            idxs.append(idx)
            ts.append(res.temperature)
            kds.append(res.kd)
            off += len(idx)
        epoch = d.epoch
        stats = d.end_epoch(validation=self._validate())
        reward = self.ecfg.reward_scale * (stats.val_acc - self._acc_prev)
        self._acc_prev = stats.val_acc
        rows = torch.cat(idxs)  # the instances the epoch's steps saw, in the order they were seen
        temps, kd = torch.cat(ts), torch.cat(kds)
        # the epoch's reward over those instances (sums to it exactly): each instance's update against
        # the descent direction at the epoch's start
        c = alignment(self._delta_buf[:off], self._h_buf[:off], g_w, g_b, dtype=torch.float32,
                      rank=self.ecfg.credit_rank)
        per = influence(reward, c)
        instance = np.zeros(self.n, np.float64)
        instance[rows.cpu().numpy()] = per.cpu().numpy()
        inp = self._features()
        obs = compute_features(self.features, inp).cpu().numpy()
        info: dict[str, Any] = {
            "instance_rewards": instance,
            "instances": rows.cpu().numpy(),  # the seen instances, in the order of the arrays below
            "temperature": temps.cpu().numpy(),
            "kd_loss": kd.cpu().numpy(),
            "teacher_confidence": inp.p_t_top1[rows].cpu().numpy(),
            "student_p_true": inp.p_s_true[rows].cpu().numpy(),
            "student_correct": inp.s_correct[rows].cpu().numpy(),
            "nan_actions": n_bad,
            "schedule_temperature": t_sched,
            "epoch": epoch,
            "epoch_val_acc": stats.val_acc,
            "val_acc": stats.val_acc,
            "val_loss": stats.val_loss,
        }
        return obs, float(reward), d.done, False, info
