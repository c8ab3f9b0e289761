"""Vectorised knowledge-distillation loss with per-instance temperatures.

Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network":

    L_kd,i = s_i * KL( softmax(z_t,i / T_t,i) || softmax(z_s,i / T_s,i) )

with the scale ``s_i = T_t,i * T_s,i`` by default, i.e. ``T_i^2`` when teacher and student share
``T_i`` (this keeps gradient magnitudes comparable across temperatures). ``T`` may be a Python
scalar, a tensor of shape (), (B,) or a teacher/student pair (B, 2). A scalar is broadcast to (B,)
first and goes through the very same arithmetic, so a constant vector gives exactly the scalar result.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F


def per_position(logits: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sequence logits (B, L, V) and labels (B, L) as (B·L, V) and (B·L,): every position is one instance
    (a language model's token); class logits (B, C) and labels (B,) pass through unchanged."""
    if logits.dim() != 3:
        return logits, labels
    return logits.reshape(-1, logits.shape[-1]), None if labels is None else labels.reshape(-1)


def as_pair(temperature: float | torch.Tensor, batch: int, like: torch.Tensor,
            check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Return temperatures as columns ``(T_teacher (B, 1), T_student (B, 1))``; reject T <= 0 / NaN / inf.

    One temperature per instance gives the same column twice. ``check=False`` skips the value check
    of a tensor (it costs a host–device sync): for callers whose temperatures were validated where
    they entered (a SPEC, an action mapped into [t_min, t_max])."""
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
        bad = ~torch.isfinite(t) | (t <= 0) if check else None
        if bad is not None and bool(bad.any()):
            raise ValueError(f"temperature must be finite and > 0; got {t[bad].flatten()[0].item()}")
    if t.dim() == 1:
        col = t[:, None]
        return col, col
    return t[:, 0:1], t[:, 1:2]


def _over_positions(loss, student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    temperature: float | torch.Tensor, scale: torch.Tensor | float | None, check: bool,
                    mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``loss`` (a (B, V) loss of this module) on sequence logits (B, L, V): every position one
    instance, temperatures a scalar, (B, L) or (B, L, 2), per-token losses (B, L); ``mask`` (B, L)
    (True: a real token) zeroes the padding and averages over the real tokens only."""
    shape = student_logits.shape[:2]
    if isinstance(temperature, torch.Tensor) and temperature.dim() >= 2:
        temperature = temperature.flatten(0, 1)
    mean, per = loss(student_logits.flatten(0, 1), teacher_logits.flatten(0, 1), temperature,
                     scale.flatten() if isinstance(scale, torch.Tensor) else scale, check)
    per = per.view(shape)
    if mask is None:
        return mean, per
    per = per * mask
    return per.sum() / mask.sum().clamp(min=1), per


def _softened(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float | torch.Tensor,
              check: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(T_t (B, 1), T_s (B, 1), log softmax(z_t / T_t), log softmax(z_s / T_s))``."""
    t_t, t_s = as_pair(temperature, student_logits.shape[0], student_logits, check)
    return t_t, t_s, F.log_softmax(teacher_logits / t_t, dim=-1), F.log_softmax(student_logits / t_s, dim=-1)


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float | torch.Tensor,
    scale: torch.Tensor | float | None = None,
    check: bool = True,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(mean over the batch, per-instance losses (B,))`` of the scaled KD loss.

    ``scale`` overrides the default per-instance factor ``T_t * T_s`` (e.g. logit standardisation
    scales by its base temperature squared). ``check``: validate the temperatures (see :func:`as_pair`).
    Sequence logits (B, L, V) make every position an instance: temperatures are then a scalar, (B, L)
    or (B, L, 2), the per-token losses come back as (B, L), and ``mask`` (B, L) (True: a real token)
    zeroes the padding and averages over the real tokens only.
    """
    if student_logits.dim() == 3:
        return _over_positions(kd_loss, student_logits, teacher_logits, temperature, scale, check, mask)
    t_t, t_s, log_p_t, log_p_s = _softened(student_logits, teacher_logits, temperature, check)
    kl = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1)
    per = kl * ((t_t * t_s)[:, 0] if scale is None else scale)
    return per.mean(), per


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
              temperature: float | torch.Tensor, check: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(TCKD (B,), NCKD (B,), T_t (B, 1), T_s (B, 1))`` of Decoupled KD (Zhao et al., CVPR 2022).

    With p = softmax(z / T) for each model and the binary split b = [p_gt, 1 − p_gt] on the label:

        TCKD_i = KL(b_t,i ‖ b_s,i)
        NCKD_i = KL(p̂_t,i ‖ p̂_s,i),  p̂ = softmax over the non-target classes (the target masked out)

    as in mdistiller's ``dkd_loss`` (which masks the target with a −1000 logit offset; here it is
    removed exactly), vectorised over per-instance temperatures. Shared by :func:`dkd_loss` and
    ATKD (:class:`~rltemp.kd.token_methods.ATKD`), which weights the two terms per token."""
    t_t, t_s = as_pair(temperature, student_logits.shape[0], student_logits, check)
    gt = F.one_hot(labels, student_logits.shape[-1]).bool()
    zt, zs = teacher_logits / t_t, student_logits / t_s
    log_p_t, log_p_s = F.log_softmax(zt, -1), F.log_softmax(zs, -1)
    # binary target / non-target probabilities, in log space: log p_gt and log(1 - p_gt)
    lt_gt, ls_gt = log_p_t.masked_select(gt)[:, None], log_p_s.masked_select(gt)[:, None]
    lt_b = torch.cat([lt_gt, torch.log1p(-lt_gt.exp().clamp(max=1 - 1e-7))], 1)
    ls_b = torch.cat([ls_gt, torch.log1p(-ls_gt.exp().clamp(max=1 - 1e-7))], 1)
    tckd = (lt_b.exp() * (lt_b - ls_b)).sum(-1)
    # non-target distribution: softmax over the other classes
    neg_inf = torch.finfo(zt.dtype).min
    lt_n = F.log_softmax(zt.masked_fill(gt, neg_inf), -1)
    ls_n = F.log_softmax(zs.masked_fill(gt, neg_inf), -1)
    nckd = (lt_n.exp() * (lt_n - ls_n)).masked_fill(gt, 0.0).sum(-1)
    return tckd, nckd, t_t, t_s


def dkd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float | torch.Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    scale: torch.Tensor | float | None = None,
    check: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoupled KD with per-instance temperatures; ``(mean, per-instance (B,))``:
    L_i = s_i · (alpha · TCKD_i + beta · NCKD_i), s_i = T_t,i · T_s,i (T_i² for one T); terms as in
    :func:`dkd_terms`."""
    tckd, nckd, t_t, t_s = dkd_terms(student_logits, teacher_logits, labels, temperature, check)
    per = (alpha * tckd + beta * nckd) * (t_t[:, 0] * t_s[:, 0] if scale is None else scale)
    return per.mean(), per


SKEW = 0.1  # DistiLLM's skew λ (its default, ``skew_alpha`` 0.1)


def divergence_loss(
    kind: str,
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float | torch.Tensor,
    scale: torch.Tensor | float | None = None,
    check: bool = True,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The language-model KD divergences, ``(mean over the batch, per-instance (B,))``, on
    temperature-softened distributions p_t = softmax(z_t / T_t), p_s = softmax(z_s / T_s), scaled by
    T_t · T_s (or ``scale``) like :func:`kd_loss` (at T = 1, the published objectives):

    - ``rkl``, reverse KL, KL(p_s ‖ p_t) (MiniLLM, Gu et al., ICLR 2024; as ``reverse_kl`` in
      ``jongwooko/distillm``'s ``distillm/losses.py``);
    - ``skl``, skew KL, KL(p_t ‖ λ p_t + (1 − λ) p_s), and ``srkl``, skew reverse KL,
      KL(p_s ‖ (1 − λ) p_t + λ p_s), with λ = :data:`SKEW` = 0.1 (DistiLLM, Ko et al., ICML 2024;
      ``skewed_forward_kl`` / ``skewed_reverse_kl`` in the same file; the mixture is clamped at
      1e-8 as there). That file drops the constant −Σ p_t log p_t from ``skl``; here it is kept, so
      the value is a divergence (zero when the two agree) and the gradient is the same.

    Sequence logits (B, L, V) and ``mask`` as in :func:`kd_loss`.
    """
    if student_logits.dim() == 3:
        return _over_positions(functools.partial(divergence_loss, kind), student_logits, teacher_logits, temperature,
                               scale, check, mask)
    t_t, t_s, log_p_t, log_p_s = _softened(student_logits, teacher_logits, temperature, check)
    p_t, p_s = log_p_t.exp(), log_p_s.exp()
    if kind == "rkl":
        per = (p_s * (log_p_s - log_p_t)).sum(-1)
    elif kind == "skl":
        per = (p_t * (log_p_t - (SKEW * p_t + (1 - SKEW) * p_s).clamp(min=1e-8).log())).sum(-1)
    elif kind == "srkl":
        per = (p_s * (log_p_s - ((1 - SKEW) * p_t + SKEW * p_s).clamp(min=1e-8).log())).sum(-1)
    else:
        raise ValueError(f"unknown divergence {kind!r}; valid: rkl, skl, srkl")
    per = per * ((t_t * t_s)[:, 0] if scale is None else scale)
    return per.mean(), per
