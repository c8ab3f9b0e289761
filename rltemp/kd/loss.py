"""Vectorised knowledge-distillation loss with per-instance temperatures.

Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network":

    L_kd,i = s_i * KL( softmax(z_t,i / T_t,i) || softmax(z_s,i / T_s,i) )

with the scale ``s_i = T_t,i * T_s,i`` by default, i.e. ``T_i^2`` when teacher and student share
``T_i`` (this keeps gradient magnitudes comparable across temperatures). ``T`` may be a Python
scalar, a tensor of shape (), (B,) or a teacher/student pair (B, 2). A scalar is broadcast to (B,)
first and goes through the very same arithmetic, so a constant vector gives exactly the scalar result.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def as_pair(temperature: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Return temperatures as a (B, 2) tensor ``[T_teacher, T_student]``; reject T <= 0 / NaN / inf."""
    if isinstance(temperature, (int, float)):
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
        t = torch.full((batch,), float(temperature), dtype=like.dtype, device=like.device)
    else:
        t = temperature.to(device=like.device, dtype=like.dtype)
        if t.dim() == 0:
            t = t.expand(batch)
        if not (t.shape == (batch,) or t.shape == (batch, 2)):
            raise ValueError(f"temperature must have shape (), ({batch},) or ({batch}, 2); got {tuple(t.shape)}")
        bad = ~torch.isfinite(t) | (t <= 0)
        if bool(bad.any()):
            raise ValueError(f"temperature must be finite and > 0; got {t[bad].flatten()[0].item()}")
    return t.unsqueeze(-1).expand(batch, 2) if t.dim() == 1 else t


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float | torch.Tensor,
    scale: torch.Tensor | float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(mean over the batch, per-instance losses (B,))`` of the scaled KD loss.

    ``scale`` overrides the default per-instance factor ``T_t * T_s`` (e.g. logit standardisation
    scales by its base temperature squared).
    """
    b = student_logits.shape[0]
    pair = as_pair(temperature, b, student_logits)
    t_t, t_s = pair[:, 0], pair[:, 1]
    log_p_t = F.log_softmax(teacher_logits / t_t[:, None], dim=-1)
    log_p_s = F.log_softmax(student_logits / t_s[:, None], dim=-1)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    per = kl * (t_t * t_s if scale is None else scale)
    return per.mean(), per
