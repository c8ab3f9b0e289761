"""Per-token distillation methods for language models: AdaKD and ATKD, each as its reference code
computes it, on the per-position logits the Distiller hands every strategy (one row per token).

Both bring their own objective (:meth:`TemperatureStrategy.objective`), so ``distill.loss`` stays
``kd``. They also run on class logits (B, C), where a row is an image instead of a token.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from rltemp.errors import ConfigError
from rltemp.kd.loss import divergence_loss, dkd_terms, kd_loss
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, bind_args


def _group_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over ``mask`` (0 for an empty group instead of the reference's 0/0)."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


# --------------------------------------------------------------------------- AdaKD


def hellinger(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """H_i = ‖√p_s,i − √p_t,i‖₂ / √2 at T = 1, in [0, 1]: AdaKD's default token difficulty."""
    p_s, p_t = F.softmax(student_logits, -1), F.softmax(teacher_logits, -1)
    return (p_s.sqrt() - p_t.sqrt()).pow(2).sum(-1).sqrt() / math.sqrt(2.0)


def adakd_temperatures(scores: torch.Tensor, base: float, scale: float, soften: bool = False) -> torch.Tensor:
    """T_i = T_base · exp(∓c · tanh(log(s_i / median s))) over the selected tokens' scores ``scores``
    (the lower median, as ``torch.median``; the ratio clamped at 1e-8 before the log). Without
    ``soften`` (the released script) a token harder than the median gets a *lower* temperature."""
    rel = (scores / scores.median()).clamp(min=1e-8)
    sign = 1.0 if soften else -1.0
    return base * torch.exp(sign * scale * torch.tanh(rel.log()))


class AdaKD(TemperatureStrategy):
    """AdaKD (Xie et al., AAAI 2026), as in ``SassyRong/AdaKD``: ``loss/losses.py`` (``AdaKD``,
    ``calculate_distillation_weight``) and the LATF loop of ``distillation.py``.

    Each step, over the batch's N tokens:

    1. difficulty s_i = Hellinger(p_s,i, p_t,i) at T = 1 (:func:`hellinger`; gradients flow
       through it, and so through the temperatures, as in the reference);
    2. the k = max(1, ⌊N · r⌋) hardest tokens are selected (top-k of s), r the current ratio;
    3. their temperatures :func:`adakd_temperatures` (T_base 1, c 0.5, harden: the released script);
    4. L = mean over the selected tokens of T_i² · D(p_s^{T_i}, p_t^{T_i}), with D reverse KL
       KL(p_s ‖ p_t) (the script's ``rkd``) or forward KL (``loss=kl``).

    LATF (loss-aware token focusing) moves r after each step: an EMA (decay 0.99, started at the
    first value) of L is compared with the EMA at the last change, ``prev``: if the loss rose by
    more than ε · prev, r ← min(r · (1 + σ), 1); if it fell by more than ε · prev,
    r ← max(r · (1 − σ), 0.1); either way prev ← the current EMA. ``prev`` is first set once the
    step count exceeds ``warmup`` · total steps. r starts at 1; σ = ε = 0.05 and warmup 0.05 as in
    the released script. The state (r, EMA, prev) is saved with the run and resumes with it.

    Weights: the reference mixes (1 − kd_ratio) · CE + kd_ratio · L; here ``distill.ce_weight`` and
    ``distill.kd_weight`` play those parts, as for every strategy. The temperatures reported for
    unselected tokens (which get no KD term) are T_base.
    """

    per_instance = True

    def __init__(self, base: float, scale: float, ratio_eps: float, loss_eps: float, warmup: float,
                 divergence: str = "rkl", soften: bool = False, ema_decay: float = 0.99) -> None:
        super().__init__()
        self.base, self.scale, self.ratio_eps, self.loss_eps = base, scale, ratio_eps, loss_eps
        self.warmup, self.divergence, self.soften, self.ema_decay = warmup, divergence, soften, ema_decay
        # LATF state as persistent buffers, so a resumed run continues it (NaN: not set yet)
        self.register_buffer("ratio", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("ema", torch.tensor(math.nan, dtype=torch.float64))
        self.register_buffer("prev", torch.tensor(math.nan, dtype=torch.float64))
        self._distiller: Any = None

    def attach(self, distiller: Any) -> None:
        self._distiller = distiller

    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        return torch.full((student_logits.shape[0],), self.base, device=student_logits.device)

    def objective(self, student_logits, teacher_logits, labels, epoch):  # noqa: ANN001, ANN201
        n = student_logits.shape[0]
        scores = hellinger(student_logits, teacher_logits)
        k = max(1, int(n * float(self.ratio)))
        sel = torch.topk(scores, k).indices
        t = adakd_temperatures(scores[sel], self.base, self.scale, self.soften)
        zs, zt = student_logits[sel], teacher_logits[sel]
        mean, per_sel = (kd_loss(zs, zt, t, check=False) if self.divergence == "kl"
                         else divergence_loss("rkl", zs, zt, t, check=False))
        self._latf(float(mean.detach()))
        per = torch.zeros(n, dtype=per_sel.dtype, device=per_sel.device).index_copy(0, sel, per_sel * (n / k))
        temps = torch.full((n,), self.base, dtype=t.dtype, device=t.device).index_copy(0, sel, t.detach())
        weight = self._distiller.kd_weight if self._distiller is not None else 1.0
        return weight * mean, weight * per, temps

    def _latf(self, loss: float) -> None:
        """One LATF update after a step whose distillation loss was ``loss``."""
        ema = loss if math.isnan(float(self.ema)) else self.ema_decay * float(self.ema) + (1 - self.ema_decay) * loss
        self.ema.fill_(ema)
        prev = float(self.prev)
        if math.isnan(prev):
            d = self._distiller
            step = (d.step_count + 1) if d is not None else 1  # the reference's global_step, 1-based
            if d is not None and step > self.warmup * d.total_steps:
                self.prev.fill_(ema)
            return
        delta, eps = prev - ema, prev * self.loss_eps
        if delta < -eps:
            self.ratio.fill_(min(float(self.ratio) * (1 + self.ratio_eps), 1.0))
            self.prev.fill_(ema)
        elif delta > eps:
            self.ratio.fill_(max(float(self.ratio) * (1 - self.ratio_eps), 0.1))
            self.prev.fill_(ema)

    def scalars(self) -> dict[str, float]:
        return {"adakd/ratio": float(self.ratio)}


@STRATEGIES.register("adakd")
def _adakd(args: list[str], kwargs: dict[str, str], ctx: StrategyContext) -> TemperatureStrategy:
    p = bind_args("adakd", args, kwargs, {"base": 1.0, "c": 0.5, "sigma": 0.05, "eps": 0.05, "warmup": 0.05,
                                          "loss": "rkl", "soften": 0})
    for k in ("base", "c", "sigma", "eps", "warmup"):
        if not (math.isfinite(p[k]) and p[k] >= (1e-12 if k == "base" else 0)):
            raise ConfigError(f"temperature SPEC 'adakd': {k} must be a finite number "
                              f"{'> 0' if k == 'base' else '>= 0'}, got {p[k]}")
    if p["loss"] not in ("rkl", "kl"):
        raise ConfigError(f"temperature SPEC 'adakd': loss must be rkl (reverse KL, the reference's rkd) or kl, "
                          f"got {p['loss']!r}")
    if p["soften"] not in (0, 1):
        raise ConfigError(f"temperature SPEC 'adakd': soften must be 0 or 1, got {p['soften']}")
    return AdaKD(p["base"], p["c"], p["sigma"], p["eps"], p["warmup"], p["loss"], bool(p["soften"]))


# --------------------------------------------------------------------------- ATKD


class ATKD(TemperatureStrategy):
    """Adaptive Teaching KD (Zhong et al., ACL 2024), as ``atkd`` / ``get_tckd_nckd`` in
    ``WHU-ZQH/ATKD``'s ``distill/distill_trainer.py``, at T = 1 for both models (the reference's).

    A token's teacher uncertainty is u_i = 1 − p_t,i(next token). Tokens with u_i below the batch's
    median (the lower median, ``torch.median``) are *easy*, the rest *hard*; with DKD's terms
    TCKD_i and NCKD_i (:func:`~rltemp.kd.loss.dkd_terms`, NCKD without the (1 − p_gt) weight):

        L = α · mean_easy NCKD + (1 − α) · (mean_hard TCKD + mean_hard NCKD),   α = 0.2

    (``distill/train.py``'s default). The reference trains on L alone: the CE weight is the method's
    own, ``ce`` (default 0), and ``distill.ce_weight`` / ``kd_weight`` are unused, as for DTKD.
    """

    per_instance = True

    def __init__(self, alpha: float, ce: float = 0.0) -> None:
        super().__init__()
        self.alpha, self.ce_weight = alpha, ce

    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        return torch.ones(student_logits.shape[0], device=student_logits.device)

    def objective(self, student_logits, teacher_logits, labels, epoch):  # noqa: ANN001, ANN201
        tckd, nckd, _, _ = dkd_terms(student_logits, teacher_logits, labels, 1.0, check=False)
        u = 1 - F.softmax(teacher_logits, -1).gather(1, labels[:, None])[:, 0]
        easy = (u < u.median()).to(tckd.dtype)
        hard = 1 - easy
        loss = (self.alpha * _group_mean(nckd, easy)
                + (1 - self.alpha) * (_group_mean(tckd, hard) + _group_mean(nckd, hard)))
        n = len(u)  # per-token contributions whose mean is the loss
        per = n * (self.alpha * nckd * easy / easy.sum().clamp(min=1)
                   + (1 - self.alpha) * (tckd + nckd) * hard / hard.sum().clamp(min=1))
        return loss, per, self(teacher_logits, student_logits, labels, 0.0)


@STRATEGIES.register("atkd")
def _atkd(args: list[str], kwargs: dict[str, str], ctx: StrategyContext) -> TemperatureStrategy:
    p = bind_args("atkd", args, kwargs, {"alpha": 0.2, "ce": 0.0})
    if not (math.isfinite(p["alpha"]) and 0 <= p["alpha"] <= 1):
        raise ConfigError(f"temperature SPEC 'atkd': alpha must lie in [0, 1], got {p['alpha']}")
    if not (math.isfinite(p["ce"]) and p["ce"] >= 0):
        raise ConfigError(f"temperature SPEC 'atkd': ce must be a finite number >= 0, got {p['ce']}")
    return ATKD(p["alpha"], p["ce"])
