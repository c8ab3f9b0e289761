"""A trained temperature policy inside your own training loop: :class:`TemperatureController`.

    import rltemp
    ctl = rltemp.TemperatureController.load("default")       # a shipped policy, a run folder or policy.json
    # the probe: distil a copy of your student for ctl.probe["epochs"] of an epoch at ctl.probe["temperature"],
    # run it and your teacher over the validation split, report, and throw the copy away
    ctl.observe_probe(student_logits=zs_val, teacher_logits=zt_val, labels=y_val)
    for step, (x, y) in enumerate(loader):
        zs, zt = student(x), teacher(x)
        T = ctl(zs, zt, y, progress=step / total_steps)      # (B,) temperatures, no gradient
        # (language models: zs, zt (B, L, V), y (B, L) and mask= (B, L) give per-token T (B, L))
        loss = 0.1 * F.cross_entropy(zs, y) + 0.9 * rltemp.kd_loss(zs, zt, T)[0]

It makes the decisions ``rltemp distill -T policy:...`` makes (:class:`~rltemp.kd.policy.PolicyStrategy`;
tested against it): the schedule head decides the whole schedule once, from what the probe reported
(:class:`~rltemp.kd.features.ValStats` of the copy's validation pass against the teacher's — or, for
a policy that reads only the probe's accuracy, ``val_acc=``), and every call gives the temperature at
the ``progress`` you pass; the modulator, if the policy has one, spreads it per instance from the
logits of each batch. ``rltemp distill`` runs the probe itself (``Distiller.probe``). Works for any
number of classes and architecture, on CPU and CUDA, for float32 and bfloat16 logits. Plain torch:
importing it loads neither gymnasium nor SB3.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rltemp.kd.features import VAL_DOCS, FeatureInput, GlobalState, validation_stats
from rltemp.kd.policy import TemperaturePolicy, load_policy


class TemperatureController:
    def __init__(self, policy: TemperaturePolicy) -> None:
        self.policy = policy
        self.action: torch.Tensor | None = None  # the schedule decision, once the probe is reported
        if policy.form.probe is None:  # a constant schedule decides without a probe
            self.action = policy.constant_action()
        self.temperature = math.nan  # the schedule temperature of the last call
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
        """The probe to run before training: ``{"epochs": ..., "temperature": ...}`` (see :meth:`observe_probe`);
        None for a policy with a constant schedule, which needs none."""
        probe = self.policy.form.probe
        return None if probe is None else {"epochs": probe.epochs, "temperature": probe.temperature}

    @property
    def reads_logits(self) -> bool:
        """True when the schedule reads student/teacher statistics of the probe's validation pass
        (:class:`~rltemp.kd.features.ValStats`): report that pass's logits, not just its accuracy."""
        return bool(set(self.policy.schedule_features) & set(VAL_DOCS))

    def observe_probe(self, val_acc: float | None = None, loss_ema: float = 0.0, *,
                      student_logits: torch.Tensor | None = None, teacher_logits: torch.Tensor | None = None,
                      labels: torch.Tensor | None = None, mask: torch.Tensor | None = None) -> None:
        """Report the probe (see :attr:`probe`): the logits of the copy of your student over the whole
        validation split, your teacher's on the same instances and their labels — or, for a policy
        that reads only the accuracy (not :attr:`reads_logits`), its validation accuracy in [0, 1] —
        and its training loss's moving average. The policy decides its schedule now."""
        stats = None
        if student_logits is not None or teacher_logits is not None or labels is not None:
            zs, zt, y = self._check(student_logits, teacher_logits, labels, mask)
            stats = validation_stats(zs.detach(), zt.detach(), y)
        elif self.reads_logits:
            names = ", ".join(sorted(set(self.policy.schedule_features) & set(VAL_DOCS)))
            raise ValueError(f"observe_probe: this policy reads student/teacher statistics of the probe's validation "
                             f"pass ({names}): pass student_logits=, teacher_logits= and labels= of the whole split")
        if val_acc is None:
            if stats is None:
                raise ValueError("observe_probe: give the validation logits (or val_acc=...)")
            val_acc = stats.acc
        val_acc = float(val_acc)
        if not 0.0 <= val_acc <= 1.0:
            raise ValueError(f"observe_probe(val_acc=...) must be an accuracy in [0, 1], got {val_acc}")
        self.action = self.policy.act(GlobalState(0.0, val_acc, float(loss_ema), stats))

    @staticmethod
    def _check(zs: torch.Tensor, zt: torch.Tensor, y: torch.Tensor,
               mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The logits (N, C) and labels (N,), checked; one-line ValueErrors naming the argument. Sequence
        logits (B, L, V) with labels (B, L) give their positions — those where ``mask`` (B, L) is True."""
        if isinstance(zs, torch.Tensor) and isinstance(zt, torch.Tensor) and zs.dim() == zt.dim() == 3:
            if zs.shape != zt.shape:
                raise ValueError(f"student and teacher logits must have the same shape, got {tuple(zs.shape)} and "
                                 f"{tuple(zt.shape)}")
            if not isinstance(y, torch.Tensor) or y.shape != zs.shape[:2]:
                raise ValueError(f"labels of sequence logits {tuple(zs.shape)} must have shape {tuple(zs.shape[:2])}")
            if mask is not None and (not isinstance(mask, torch.Tensor) or mask.shape != zs.shape[:2]):
                raise ValueError(f"mask must be a tensor of shape {tuple(zs.shape[:2])} (True: a real token)")
            if mask is None:
                zs, zt, y = zs.flatten(0, 1), zt.flatten(0, 1), y.flatten()
            else:
                zs, zt, y = zs[mask.bool()], zt[mask.bool()], y[mask.bool()]
        elif mask is not None:
            raise ValueError("mask is for sequence logits (B, L, V)")
        for name, z in (("student_logits", zs), ("teacher_logits", zt)):
            if not isinstance(z, torch.Tensor) or z.dim() != 2 or not z.is_floating_point():
                raise ValueError(f"{name} must be a floating-point tensor of shape (B, C) or (B, L, V), got "
                                 f"{tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__}")
        if zs.shape != zt.shape:
            raise ValueError(f"student and teacher logits must have the same shape, got {tuple(zs.shape)} and "
                             f"{tuple(zt.shape)}")
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
                 progress: float, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Per-instance temperatures (B,) for this batch, on the logits' device, float32; for sequence
        logits (B, L, V), per-token temperatures (B, L) (padding, where ``mask`` is False, gets the
        schedule's temperature and should be masked out of the loss: ``kd_loss(..., mask=mask)``)."""
        temps = self._temperatures(*self._check(student_logits, teacher_logits, labels, mask), progress)
        if student_logits.dim() != 3:
            return temps
        if mask is None:
            return temps.view(student_logits.shape[:2])
        out = torch.full(student_logits.shape[:2], self.temperature, dtype=torch.float32, device=temps.device)
        out[mask.bool()] = temps
        return out

    def _temperatures(self, zs: torch.Tensor, zt: torch.Tensor, y: torch.Tensor, progress: float) -> torch.Tensor:
        if not 0.0 <= float(progress) <= 1.0:
            raise ValueError(f"progress must be the fraction of training done, in [0, 1], got {progress}")
        if self.action is None:
            p = self.probe
            raise RuntimeError(f"this policy decides from a probe: distil a copy of your student for {p['epochs']:g} "
                               f"of "
                               f"an epoch at T = {p['temperature']:g}, run it over the validation split, and call "
                               "observe_probe(...) before the first batch")
        self.temperature = self.policy.form.temperature(self.action, float(progress))
        if self.policy.modulator is None:
            return torch.full((zs.shape[0],), self.temperature, dtype=torch.float32, device=zs.device)
        if self._device != zs.device:
            self.policy.to(zs.device)
            self._device = zs.device
        return self.policy.temperatures(self.temperature, FeatureInput(zs.detach().float(), zt.detach().float(),
                                                                       y.long())).float()
