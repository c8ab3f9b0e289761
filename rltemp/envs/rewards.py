"""Validation-gain rewards and instance reward calibration.

Reward (DESIGN §3): every ``reward_interval`` optimiser steps the student is evaluated (eval mode,
no gradients) on a fixed subset of the *validation* split; the interval's reward is

    R = scale * (signal_now - signal_before)

with ``signal`` the validation accuracy (``val_acc``) or minus the validation loss (``val_loss``).
Rewarding the change on *training* batches would mostly measure batch difficulty, and rewarding a
low training loss teaches an agent to shrink the loss rather than to help generalisation — both
are avoided here. The test split is never touched.

Calibration: the interval's reward is shared by the k·B decisions (k steps, B instances) taken in
it. A rule returns per-instance rewards r (k, B) with ``r.sum() == R`` (tested):

- ``uniform``: r = R / (k·B) — every decision gets the same share.
- ``kd_share``: r_{t,i} = R · L_kd,{t,i} / Σ L_kd — a decision's share is its share of the
  interval's KD loss, i.e. of the distillation signal that moved the student (falls back to
  uniform when the KD loss is 0).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from rltemp.registry import Registry

Signal = Callable[[float, float], float]  # (val_acc, val_loss) -> signal
REWARDS: Registry[Signal] = Registry("reward")
REWARDS.register("val_acc")(lambda acc, loss: acc)
REWARDS.register("val_loss")(lambda acc, loss: -loss)

Calibration = Callable[[float, torch.Tensor], torch.Tensor]  # (R, kd (k, B)) -> (k, B)
CALIBRATIONS: Registry[Calibration] = Registry("reward calibration")


@CALIBRATIONS.register("uniform")
def uniform(reward: float, kd: torch.Tensor) -> torch.Tensor:
    return torch.full(kd.shape, reward / kd.numel(), dtype=torch.float64)


@CALIBRATIONS.register("kd_share")
def kd_share(reward: float, kd: torch.Tensor) -> torch.Tensor:
    w = kd.double().clamp_min(0)
    total = w.sum()
    if not torch.isfinite(total) or total <= 0:
        return uniform(reward, kd)
    return reward * w / total
