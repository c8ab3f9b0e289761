"""Observation features, independent of architecture and number of classes, all in [0, 1].

- Global features (:data:`GLOBAL_FEATURES`): one value per decision, from a training state
  (:class:`GlobalState`) — the scale-free student/teacher statistics of its last validation pass
  (:class:`ValStats`), which the shipped policy reads from a probe of the student.
- Instance features (:data:`FEATURES`): one row per instance, computed from the logits the training
  step already has (no extra forward pass); online mode's modulator reads these.

The feature *sets* are recorded with a trained policy, and transfer refuses a policy whose set
this version does not have.

RLKD (Zhang et al., "Instance Temperature Knowledge Distillation") observes the student's top-1
probability, the teacher's top-1 probability and the student's top-1 minus top-2 margin; they are
``p_s_top1``, ``p_t_top1`` and ``margin_s`` here. This module imports only torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from rltemp.errors import ConfigError, did_you_mean
from rltemp.kd.loss import per_position
from rltemp.registry import Registry


@dataclass
class FeatureInput:
    """What an instance feature may read: this batch's logits and labels.

    Shared intermediate results (log-probabilities, top-2, argmax) are computed once per batch.
    """

    student_logits: torch.Tensor  # (B, C), detached
    teacher_logits: torch.Tensor  # (B, C), detached
    labels: torch.Tensor  # (B,)

    @cached_property
    def p_s(self) -> torch.Tensor:
        return F.softmax(self.student_logits.float(), -1)

    @cached_property
    def logp_t(self) -> torch.Tensor:
        return F.log_softmax(self.teacher_logits.float(), -1)

    @cached_property
    def p_t(self) -> torch.Tensor:
        return self.logp_t.exp()

    @cached_property
    def p_s_top1(self) -> torch.Tensor:
        """The student's largest probability, (B,). Class indices are never needed: the features that
        ask about the student's top-1 class compare probabilities with it instead (``max`` with
        indices, ``argmax`` and ``topk`` are several times slower than ``amax`` on the CPU)."""
        return self.p_s.amax(-1)

    @cached_property
    def p_t_top1(self) -> torch.Tensor:
        return self.p_t.amax(-1)

    @cached_property
    def top2_s(self) -> torch.Tensor:
        """The student's two largest probabilities, (B, 2); equal when the top class is tied."""
        v1 = self.p_s_top1
        top = self.p_s >= v1[:, None]
        v2 = torch.where(top, -1.0, self.p_s).amax(-1)
        return torch.stack([v1, torch.where(torch.count_nonzero(top, dim=-1) > 1, v1, v2)], -1)

    @cached_property
    def p_s_true(self) -> torch.Tensor:
        """The student's probability of the label, (B,)."""
        return _at(self.p_s, self.labels)

    @cached_property
    def s_correct(self) -> torch.Tensor:
        """bool (B,): the label is the student's top-1 class (one of them, if tied)."""
        return self.p_s_true >= self.p_s_top1

    @cached_property
    def teacher_entropy(self) -> torch.Tensor:
        """H(p_t) in nats, (B,)."""
        return -(self.p_t * self.logp_t).sum(-1)


Feature = Callable[[FeatureInput], torch.Tensor]
FEATURES: Registry[Feature] = Registry("feature")


def _at(x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """x[i, cls[i]] for every row i."""
    return x.gather(1, cls[:, None]).squeeze(1)


def _register(name: str, doc: str) -> Callable[[Feature], Feature]:
    def deco(fn: Feature) -> Feature:
        fn.__doc__ = doc
        return FEATURES.register(name)(fn)

    return deco


_register("p_t_top1", "teacher top-1 probability (RLKD)")(lambda f: f.p_t_top1)
_register("p_s_top1", "student top-1 probability (RLKD)")(lambda f: f.p_s_top1)
_register("margin_s", "student top-1 minus top-2 probability (RLKD)")(lambda f: f.top2_s[:, 0] - f.top2_s[:, 1])


@dataclass(frozen=True)
class ValStats:
    """Student/teacher statistics of one pass over the validation split V (N instances, C classes),
    with z_s, z_t the logits, p = softmax(z) and y the labels. Every one means the same at any
    number of classes, any data size and any constant shift of the logits (tested):

    - ``acc`` = mean 1[argmax z_s = y], ``acc_t`` the teacher's;
    - ``agree`` = mean 1[argmax z_s = argmax z_t] (top-1 agreement with the teacher);
    - ``kl`` = mean KL(p_t ‖ p_s) / log C (the distance to the teacher, in units of log C);
    - ``ent_s``, ``ent_t`` = mean H(p) / log C (1: uniform; 0: one-hot).
    """

    acc: float
    acc_t: float
    agree: float
    kl: float
    ent_s: float
    ent_t: float


@torch.no_grad()
def validation_stats(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor) -> ValStats:
    """:class:`ValStats` from a validation pass's student and teacher logits (N, C) and labels (N,);
    sequence logits (N, L, V) count every position."""
    zs, labels = per_position(student_logits.float(), labels)
    zt = per_position(teacher_logits.float())[0]
    log_c = math.log(zs.shape[-1])
    lps, lpt = F.log_softmax(zs, -1), F.log_softmax(zt, -1)
    ps, pt = lps.exp(), lpt.exp()
    top_s, top_t = zs.argmax(-1), zt.argmax(-1)
    return ValStats(
        acc=float((top_s == labels).float().mean()), acc_t=float((top_t == labels).float().mean()),
        agree=float((top_s == top_t).float().mean()),
        kl=float((pt * (lpt - lps)).sum(-1).mean()) / log_c, ent_s=float(-(ps * lps).sum(-1).mean()) / log_c,
        ent_t=float(-(pt * lpt).sum(-1).mean()) / log_c,
    )


@dataclass(frozen=True)
class GlobalState:
    """The training state a schedule decision sees (the Distiller's own counters)."""

    progress: float  # fraction of optimiser steps done, in [0, 1]
    last_val_acc: float  # accuracy on the full validation split after the last epoch (0 before the first)
    loss_ema: float  # moving average (0.9) of the training loss
    val: ValStats | None = None  # the last validation pass's student/teacher statistics (None before it)


def moving_average(ema: float, value: float, n: int) -> float:
    """The training loss's moving average after its ``n``-th value (n ≥ 1): the value itself first,
    then ema = 0.9 · ema + 0.1 · value (Python floats, as the Distiller folds its step losses)."""
    return value if n == 1 else 0.9 * ema + 0.1 * value


GlobalFeature = Callable[[GlobalState], float]
GLOBAL_FEATURES: Registry[GlobalFeature] = Registry("global feature")
GLOBAL_FEATURES.register("last_val_acc")(lambda s: s.last_val_acc)  # raw: its meaning depends on the class count


def _val(fn: Callable[[ValStats], float]) -> GlobalFeature:
    return lambda s: fn(s.val) if s.val is not None else 0.0


# Scale-free student/teacher features (ValStats), all clipped to [0, 1]; 0 before any validation.
VAL_DOCS = {
    "rel_acc": "student accuracy relative to the teacher's: acc_s / acc_t",
    "agreement": "top-1 agreement with the teacher: mean 1[argmax z_s = argmax z_t]",
    "kl_teacher": "KL(p_t || p_s) / log C, mean over the validation split",
    "student_entropy": "H(p_s) / log C, mean over the validation split",
    "teacher_entropy": "H(p_t) / log C, mean over the validation split",
}
GLOBAL_FEATURES.register("rel_acc")(_val(lambda v: v.acc / v.acc_t if v.acc_t > 0 else 0.0))
GLOBAL_FEATURES.register("agreement")(_val(lambda v: v.agree))
GLOBAL_FEATURES.register("kl_teacher")(_val(lambda v: v.kl))
GLOBAL_FEATURES.register("student_entropy")(_val(lambda v: v.ent_s))
GLOBAL_FEATURES.register("teacher_entropy")(_val(lambda v: v.ent_t))


def global_features(names: list[str], state: GlobalState) -> torch.Tensor:
    """The named global features as a (F,) float32 tensor in [0, 1]."""
    return torch.tensor([GLOBAL_FEATURES.get(n)(state) for n in names], dtype=torch.float32).clamp(0.0, 1.0)


def check_features(names: list[str], field: str = "env.features", registry: Registry = FEATURES) -> list[str]:
    """``names`` if every one is in ``registry`` (once); else a ConfigError naming ``field``."""
    if not names:
        raise ConfigError(f"{field} must name at least one feature")
    for n in names:
        if n not in registry:
            raise ConfigError(f"{field}: unknown feature {n!r}{did_you_mean(n, registry.names())}; "
                              f"valid: {', '.join(registry.names())}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{field} lists a feature twice")
    return list(names)


def compute_features(names: list[str], inp: FeatureInput) -> torch.Tensor:
    """Stack the named features into a (B, F) float32 tensor in [0, 1]."""
    return torch.stack([FEATURES.get(n)(inp) for n in names], -1).clamp(0.0, 1.0).float()
