"""A trained temperature policy inside your own training loop: :class:`TemperatureController`.

    import rltemp
    ctl = rltemp.TemperatureController.load("default")        # a shipped policy, a run folder or policy.json
    for step, (x, y) in enumerate(loader):
        zs, zt = student(x), teacher(x)
        T = ctl(zs, zt, y, progress=step / total_steps)       # (B,) temperatures, no gradient
        loss = 0.1 * F.cross_entropy(zs, y) + 0.9 * rltemp.kd_loss(zs, zt, T)[0]
        ...
        ctl.observe(loss=loss.item())                          # optional: the loss moving average
    ctl.observe(val_acc=...)                                   # after each epoch's validation, if you have one

It makes the decisions ``rltemp distill -T policy:...`` makes (:class:`~rltemp.kd.policy.PolicyStrategy`;
tested against it): the schedule head decides the temperature of an epoch from the global state —
the ``progress`` you pass, the last validation accuracy and the moving average (0.9) of the
training loss you report — at the first call and at the first call after each
``observe(val_acc=...)``; the modulator, if the policy has one, spreads it per instance from the
logits of each batch. Without validation accuracy the schedule is decided once, at the first call,
unless you call :meth:`decide` yourself (e.g. every epoch); a policy whose schedule observes only
``progress`` needs nothing else. A run-level policy (:attr:`probe` is not None) decides its whole
schedule, the first epoch included, from what you report with :meth:`observe_probe`: distil a copy
of your student for ``probe["epochs"]`` of an epoch at ``probe["temperature"]``, validate it,
report, and throw the copy away (``rltemp distill`` does this itself). Works for any number of classes and architecture, on CPU and CUDA,
for float32 and bfloat16 logits. Plain torch: importing it loads neither gymnasium nor SB3.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rltemp.kd.features import VAL_DOCS, FeatureInput, GlobalState, ValStats, moving_average, validation_stats
from rltemp.kd.policy import ScheduleDecisions, TemperaturePolicy, load_policy


class TemperatureController:
    def __init__(self, policy: TemperaturePolicy) -> None:
        self.policy = policy
        self.decisions = ScheduleDecisions(policy)
        self.last_val_acc = 0.0
        self.last_val_stats: ValStats | None = None
        self.loss_ema = 0.0
        self._losses = 0
        self._due = True
        self.temperature = math.nan  # the schedule temperature in force
        self._device: torch.device | None = None

    @classmethod
    def load(cls, path: str | Path) -> TemperatureController:
        """Load a policy weights-only: a shipped name (``default``), a train-policy run folder or policy.json."""
        return cls(load_policy(path))

    @property
    def features(self) -> dict[str, list[str]]:
        """What the policy observes: the schedule's global features and the modulator's per-instance ones."""
        return {"schedule": list(self.policy.schedule_features), "instance": list(self.policy.instance_features)}

    @property
    def probe(self) -> dict[str, float] | None:
        """For a run-level policy: ``{"epochs": ..., "temperature": ...}``, the probe to run before
        training (see :meth:`observe_probe`); None for a policy that decides every epoch."""
        probe = self.policy.form.probe
        return None if probe is None else {"epochs": probe.epochs, "temperature": probe.temperature}

    @property
    def reads_logits(self) -> bool:
        """True when the schedule reads student/teacher statistics of a validation pass
        (:class:`~rltemp.kd.features.ValStats`): report that pass's logits, not just its accuracy."""
        return bool(set(self.policy.schedule_features) & set(VAL_DOCS))

    def _val_stats(self, where: str, student_logits: torch.Tensor | None, teacher_logits: torch.Tensor | None,
                   labels: torch.Tensor | None) -> ValStats | None:
        if student_logits is None and teacher_logits is None and labels is None:
            if self.reads_logits:
                raise ValueError(f"{where}: this policy reads student/teacher statistics of the validation pass "
                                 f"({', '.join(sorted(set(self.policy.schedule_features) & set(VAL_DOCS)))}): pass "
                                 "student_logits=, teacher_logits= and labels= of the whole validation split")
            return None
        zs, zt, y = self._check(student_logits, teacher_logits, labels)
        return validation_stats(zs.detach(), zt.detach(), y)

    def observe_probe(self, val_acc: float | None = None, loss_ema: float = 0.0, *,
                      student_logits: torch.Tensor | None = None, teacher_logits: torch.Tensor | None = None,
                      labels: torch.Tensor | None = None) -> None:
        """Report the probe (see :attr:`probe`): the copy of your student's validation accuracy in
        [0, 1] after it — or the logits of its pass over the whole validation split, your teacher's on
        the same instances and their labels (what :attr:`reads_logits` policies need) — and its training
        loss's moving average. The policy decides its schedule now."""
        if self.probe is None:
            raise ValueError("this policy decides without a probe; report validation accuracy with observe(val_acc=...)")
        stats = self._val_stats("observe_probe", student_logits, teacher_logits, labels)
        acc = self._accuracy("observe_probe", val_acc, stats)
        self.decisions.action = self.policy.act(GlobalState(0.0, acc, float(loss_ema), stats))
        self._due = True

    @staticmethod
    def _accuracy(where: str, val_acc: float | None, stats: ValStats | None) -> float:
        if val_acc is None:
            if stats is None:
                raise ValueError(f"{where}: give val_acc=... or the validation logits")
            return stats.acc
        val_acc = float(val_acc)
        if not 0.0 <= val_acc <= 1.0:
            raise ValueError(f"{where}(val_acc=...) must be an accuracy in [0, 1], got {val_acc}")
        return val_acc

    def observe(self, val_acc: float | None = None, loss: float | None = None, *,
                student_logits: torch.Tensor | None = None, teacher_logits: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> None:
        """Report global state: a step's training ``loss`` (updates the moving average, as the
        Distiller does after every step) and/or, after an epoch, the validation accuracy in [0, 1] or the
        logits of the validation pass (with the teacher's and the labels, as :meth:`observe_probe`);
        the next call decides the next schedule temperature."""
        if loss is not None:
            loss = float(loss)
            if not math.isfinite(loss):
                raise ValueError(f"observe(loss=...) must be finite, got {loss}")
            self._losses += 1
            self.loss_ema = moving_average(self.loss_ema, loss, self._losses)
        if val_acc is not None or student_logits is not None:
            self.last_val_stats = self._val_stats("observe", student_logits, teacher_logits, labels)
            self.last_val_acc = self._accuracy("observe", val_acc, self.last_val_stats)
            self._due = True

    def decide(self, progress: float) -> float:
        """Decide the schedule temperature now (from ``progress`` and the observed state) and return it."""
        if self.probe is not None and self.decisions.action is None:
            p = self.probe
            raise RuntimeError(f"this policy decides from a probe: distil a copy of your student for {p['epochs']:g} of "
                               f"an epoch at T = {p['temperature']:g}, validate it, and call observe_probe(val_acc=...) "
                               "before the first batch")
        self.temperature = self.decisions.temperature(GlobalState(progress, self.last_val_acc, self.loss_ema,
                                                                  self.last_val_stats))
        self._due = False
        return self.temperature

    @staticmethod
    def _check(zs: torch.Tensor, zt: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The logits (N, C) and labels (N,), checked; one-line ValueErrors naming the argument."""
        for name, z in (("student_logits", zs), ("teacher_logits", zt)):
            if not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor of shape (B, C), got "
                                 f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        if zs.shape != zt.shape:
            raise ValueError(f"student and teacher logits must have the same shape, got {tuple(zs.shape)} and {tuple(zt.shape)}")
        if zs.shape[1] < 2:
            raise ValueError(f"logits need at least 2 classes, got {zs.shape[1]}")
        if not isinstance(y, torch.Tensor) or y.shape != (zs.shape[0],) or y.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"labels must be an integer tensor of shape ({zs.shape[0]},), got "
                             f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
        if zs.device != zt.device or y.device != zs.device:
            raise ValueError(f"logits and labels must be on one device, got {zs.device}, {zt.device} and {y.device}")
        return zs, zt, y

    @torch.no_grad()
    def __call__(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                 progress: float) -> torch.Tensor:
        """Per-instance temperatures (B,) for this batch, on the logits' device, float32."""
        zs, zt, y = self._check(student_logits, teacher_logits, labels)
        if not 0.0 <= float(progress) <= 1.0:
            raise ValueError(f"progress must be the fraction of training done, in [0, 1], got {progress}")
        if self._due:
            self.decide(float(progress))
        if self.policy.modulator is None:
            return torch.full((zs.shape[0],), self.temperature, dtype=torch.float32, device=zs.device)
        if self._device != zs.device:
            self.policy.to(zs.device)
            self._device = zs.device
        inp = FeatureInput(zs.detach().float(), zt.detach().float(), y.long(), float(progress), self.last_val_acc,
                           self.loss_ema)
        return self.policy.temperatures(self.temperature, inp).float()
