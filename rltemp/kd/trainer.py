"""The distillation loop, steppable one mini-batch at a time.

:class:`Distiller` owns the student, its optimiser and LR schedule, the frozen teacher (or its
cached logits) and the temperature strategy. ``fit`` runs whole epochs; the Gymnasium environment
drives the very same object through :meth:`Distiller.train_step` / :meth:`Distiller.end_epoch`
with temperatures chosen by an agent, so there is one training loop, not two.

Loss (Hinton et al. 2015): ``L = w_ce * mean_i CE(z_s,i, y_i) + w_kd * mean_i L_kd,i`` with
:func:`rltemp.kd.loss.kd_loss`. With no strategy (SPEC ``ce``) the loss is plain CE (weight 1).
Batches are drawn with ``drop_last=True`` so every step sees exactly ``batch_size`` instances.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rltemp.config import DistillConfig, OptimConfig
from rltemp.data.base import DataBundle, Split
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.features import FeatureInput, GlobalState, ValStats, moving_average, validation_stats
from rltemp.kd.loss import divergence_loss, dkd_loss, kd_loss, per_position
from rltemp.kd.strategies import TemperatureStrategy, scaled_epochs, warmup_factor
from rltemp.kd.tblog import Decisions

log = logging.getLogger(__name__)


def make_optimizer(cfg: OptimConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                               nesterov=cfg.nesterov)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(cfg: OptimConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch schedule: ``none``, ``cosine`` (to 0 over ``epochs``) or ``step`` (x gamma at milestones)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.milestones, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, data: DataBundle, batch_size: int = 1024,
             keep_logits: list[torch.Tensor] | None = None) -> tuple[float, float]:
    """Accuracy and mean CE of ``model`` on ``split`` (eval mode, no gradients; per position for
    sequence logits: next-character accuracy and nats per character); the logits of each
    batch are appended to ``keep_logits`` when given (for :func:`~rltemp.kd.features.validation_stats`)."""
    was_training = model.training
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y, _ in split.batches(batch_size):
        z = model(data.preprocess(x, False, None))
        if keep_logits is not None:
            keep_logits.append(z)
        z, y = per_position(z, y)
        correct += int((z.argmax(-1) == y).sum())
        loss_sum += float(F.cross_entropy(z, y, reduction="sum"))
        n += len(y)
    model.train(was_training)
    return correct / max(n, 1), loss_sum / max(n, 1)


@torch.no_grad()
def predict_logits(model: nn.Module, split: Split, data: DataBundle, batch_size: int = 1024) -> torch.Tensor:
    """``model``'s logits over ``split`` in eval mode (its mode restored), no gradients."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(data.preprocess(x, False, None)) for x, _, _ in split.batches(batch_size)])
    model.train(was_training)
    return out


@dataclass
class StepResult:
    """What one optimiser step saw; tensors are detached."""

    student_logits: torch.Tensor
    teacher_logits: torch.Tensor | None
    labels: torch.Tensor
    temperature: torch.Tensor | None  # (B,) or (B, 2)
    ce: torch.Tensor  # (B,)
    kd: torch.Tensor | None  # (B,)
    loss: torch.Tensor  # ()


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_acc: float
    val_loss: float
    seconds: float
    decisions: Decisions | None = None  # the epoch's per-instance decisions (strategies that vary per instance)
    extra: dict[str, float] = field(default_factory=dict)
    # exact sufficient statistics of the epoch's (student) temperatures: n, sum, sumsq, min, max
    temperature_stats: dict[str, float] | None = None
    schedule_temperature: float | None = None  # a trained policy's schedule temperature for this epoch
    val_stats: ValStats | None = None  # student/teacher statistics of the epoch's validation pass (with a teacher)
    observed: dict[str, float] | None = None  # what a trained policy's decision in this epoch read


class Distiller:
    """One student trained with CE (+ KD from ``teacher`` at temperatures from ``strategy``)."""

    def __init__(
        self,
        cfg: DistillConfig | OptimConfig,
        data: DataBundle,
        student: nn.Module,
        teacher: nn.Module | None = None,
        strategy: TemperatureStrategy | None = None,
        seed: int = 0,
        device: torch.device | str = "cpu",
        cache_teacher: bool = True,
        external_temperature: bool = False,
        teacher_cache: torch.Tensor | None = None,
        teacher_val: torch.Tensor | None = None,
    ) -> None:
        """``external_temperature``: distil without a strategy; every :meth:`train_step` is given
        its temperatures (the environment's actions). ``teacher_cache`` / ``teacher_val``: precomputed
        teacher logits of the training / validation split to reuse (the environments compute them once
        for all episodes)."""
        self.cfg = cfg
        self.device = torch.device(device)
        self.data = data
        self.student = student.to(self.device)
        self.channels_last = bool(getattr(cfg, "channels_last", False)) and len(data.input_shape) == 3
        if self.channels_last:
            self.student = self.student.to(memory_format=torch.channels_last)
        self.amp = bool(getattr(cfg, "amp", False))
        self.strategy = strategy.to(self.device) if strategy is not None else None
        distilling = strategy is not None or external_temperature
        if distilling and teacher is None:
            raise ValueError("a temperature strategy needs a teacher")
        self.ce_weight = float(getattr(cfg, "ce_weight", 1.0)) if distilling else 1.0
        if strategy is not None and strategy.ce_weight is not None:  # the method's own reference weight
            self.ce_weight = float(strategy.ce_weight)
        self.kd_weight = float(getattr(cfg, "kd_weight", 0.0)) if distilling else 0.0
        self.loss = str(getattr(cfg, "loss", "kd"))
        own_objective = strategy is not None and type(strategy).objective is not TemperatureStrategy.objective
        if self.loss != "kd" and own_objective:
            name = strategy.spec or type(strategy).__name__
            raise ConfigError(f"distill.loss={self.loss} cannot be combined with {name}: "
                              "that method brings its own objective; use distill.loss=kd")
        self.teacher = teacher.to(self.device).eval() if (teacher is not None and distilling) else None
        if self.teacher is not None:
            for p in self.teacher.parameters():
                p.requires_grad_(False)
        params = list(self.student.parameters()) + (list(self.strategy.parameters()) if self.strategy else [])
        self.optimizer = make_optimizer(cfg, params)
        self.scheduler = make_scheduler(cfg, self.optimizer)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.steps_per_epoch = len(data.train) // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {len(data.train)} training instances")
        self.total_steps = self.steps_per_epoch * cfg.epochs
        self.epoch = 0
        self.step_count = 0
        self.best_val_acc = -1.0
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.last_val_acc = 0.0  # full-val accuracy at the end of the previous epoch (0 before the first)
        # Per-step bookkeeping costs a list append (no host sync, no extra kernels): the step losses and
        # temperatures are reduced when read — the loss moving average when someone asks for it (the
        # environment's features do, every step; a plain run once per epoch), the rest at the epoch's end.
        # Per-instance decisions (for TensorBoard) are kept only for strategies that vary per instance.
        self._loss_ema = 0.0
        self._ema_steps = 0  # steps folded into _loss_ema
        self.record_decisions = bool(getattr(strategy, "per_instance", False))
        self._reset_epoch_stats()
        # Teacher-logit cache: without augmentation the teacher's training logits never change.
        self.teacher_cache: torch.Tensor | None = None
        if self.teacher is not None and cache_teacher and not data.augmented:
            self.teacher_cache = teacher_cache if teacher_cache is not None else predict_logits(self.teacher,
                                                                                                data.train, data)
        # the teacher's validation logits, once: the statistics of every validation pass compare the student with them
        self.teacher_val: torch.Tensor | None = None
        if self.teacher is not None:
            self.teacher_val = teacher_val if teacher_val is not None else predict_logits(self.teacher, data.val, data)
        self.last_val_stats: ValStats | None = None
        if self.strategy is not None:
            self.strategy.attach(self)
            self.strategy.on_epoch_start(0, cfg.epochs)

    def _reset_epoch_stats(self) -> None:
        self._epoch_losses: list[torch.Tensor] = []  # this epoch's step losses (0-d, detached)
        self._folded = 0  # how many of them the moving average already holds
        self._epoch_t: list[torch.Tensor] = []  # this epoch's (student) temperatures, per step
        self._decisions: list[tuple[torch.Tensor, ...]] = []
        self._epoch_t0 = time.perf_counter()

    def _fold_losses(self) -> None:
        """Bring the moving average up to date: ema = 0.9 · ema + 0.1 · loss per step (Python floats)."""
        pending = self._epoch_losses[self._folded:]
        if not pending:
            return
        for v in torch.stack(pending).tolist():
            self._ema_steps += 1
            self._loss_ema = moving_average(self._loss_ema, v, self._ema_steps)
        self._folded = len(self._epoch_losses)

    # ------------------------------------------------------------------ stepping API
    @property
    def loss_ema(self) -> float:
        """Exponential moving average (0.9) of the training loss (0 before the first step)."""
        self._fold_losses()
        return self._loss_ema

    @loss_ema.setter
    def loss_ema(self, value: float) -> None:
        self._fold_losses()
        self._loss_ema = float(value)
        self._ema_steps = max(self._ema_steps, self.step_count)

    def state(self) -> GlobalState:
        """The global state a schedule decision sees now: progress, the last validation's accuracy and
        statistics, the loss's moving average."""
        return GlobalState(self.progress, self.last_val_acc, self.loss_ema, self.last_val_stats)

    @property
    def progress(self) -> float:
        """Fraction of the optimiser steps done, in [0, 1]."""
        return self.step_count / self.total_steps

    @property
    def done(self) -> bool:
        return self.epoch >= self.cfg.epochs

    def epoch_batches(self):  # noqa: ANN201
        """Shuffled full batches of the training split for the current epoch (the student in train mode)."""
        self.student.train()
        return self.data.train.batches(self.cfg.batch_size, shuffle=True, generator=self.generator, drop_last=True)

    def teacher_logits(self, x_pre: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.teacher_cache is not None:
            return self.teacher_cache[idx]
        assert self.teacher is not None
        with torch.no_grad():
            return self.teacher(x_pre)

    def forward_batch(self, x: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Preprocess (augment) a training batch; return student logits (with grad) and teacher logits.
        The student is in train mode: :meth:`epoch_batches` sets it, and evaluation restores it."""
        x_pre = self.data.preprocess(x, True, self.generator)
        if self.channels_last:
            x_pre = x_pre.contiguous(memory_format=torch.channels_last)
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.amp else contextlib.nullcontext()
        with amp:
            z_s = self.student(x_pre)
            z_t = self.teacher_logits(x_pre, idx) if self.teacher is not None else None
        # losses and temperatures in float32, one row per instance (per position of a sequence)
        return per_position(z_s.float())[0], (per_position(z_t.float())[0] if z_t is not None else None)

    def train_step(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        idx: torch.Tensor,
        temperature: torch.Tensor | float | None = None,
        logits: tuple[torch.Tensor, torch.Tensor | None] | None = None,
    ) -> StepResult:
        """One optimiser step. ``temperature`` overrides the strategy (the environment's action);
        ``logits`` reuses a forward pass already made for this batch (see :meth:`forward_batch`)."""
        z_s, z_t = logits if logits is not None else self.forward_batch(x, idx)
        y = y.reshape(-1)  # (B·L,) for sequences, as the logits
        ce = F.cross_entropy(z_s, y, reduction="none")
        loss = self.ce_weight * ce.mean()
        t = kd = None
        if z_t is not None:
            kd_weighted, kd, t = self.kd_term(z_s, z_t, y, temperature)
            loss = loss + kd_weighted
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step_count += 1
        self._epoch_losses.append(loss.detach())
        if t is not None:
            t = t.detach()
            ts = t[:, 1] if t.dim() == 2 else t
            self._epoch_t.append(ts)
            if self.record_decisions:
                inp = self.strategy.last_input if self.strategy is not None else None
                if inp is None or inp.labels is not y:  # the strategy read no features of this batch
                    inp = FeatureInput(z_s.detach(), z_t.detach(), y)
                self._decisions.append((ts, inp.p_t_top1, inp.p_s_true, inp.s_correct, inp.teacher_entropy))
        return StepResult(
            z_s.detach(), None if z_t is None else z_t.detach(), y, t, ce.detach(),
            None if kd is None else kd.detach(), loss.detach(),
        )

    def kd_term(self, z_s: torch.Tensor, z_t: torch.Tensor, y: torch.Tensor,
                temperature: torch.Tensor | float | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(weighted batch KD loss, per-instance KD loss (B,), temperatures (B,) or (B, 2))``.

        Temperatures come from ``temperature`` (the environment's action) or the strategy; they
        enter ``distill.loss``: ``kd`` weighted by ``kd_weight``, ``dkd`` (Decoupled KD, with its
        own α, β and warm-up), or a language-model divergence weighted by ``kd_weight`` (``rkl``, ``skl``,
        ``srkl``: :func:`~rltemp.kd.loss.divergence_loss`). A strategy with its own reference objective
        (DTKD) replaces them."""
        scale = None
        if temperature is None:
            assert self.strategy is not None
            custom = self.strategy.objective(z_s, z_t, y, self.epoch)
            if custom is not None:
                return custom
            temperature = self.strategy(z_t, z_s, y, self.progress)
            scale = self.strategy.loss_scale(temperature)
        t = temperature if isinstance(temperature, torch.Tensor) else torch.full((len(y),), float(temperature),
                                                                                 device=z_s.device)
        if self.loss == "dkd":
            cfg = self.cfg
            mean, per = dkd_loss(z_s, z_t, y, t, cfg.dkd_alpha, cfg.dkd_beta, scale, check=False)
            w = warmup_factor(self.epoch, scaled_epochs(cfg.dkd_warmup, cfg.epochs))
            return w * mean, w * per, t
        if self.loss != "kd":
            mean, per = divergence_loss(self.loss, z_s, z_t, t, scale, check=False)
            return self.kd_weight * mean, per, t
        mean, per = kd_loss(z_s, z_t, t, scale, check=False)  # validated where temperatures enter
        return self.kd_weight * mean, per, t

    def end_epoch(self, validation: tuple[float, float] | None = None) -> EpochStats:
        """Step the LR schedule, validate, track the best-on-val state, start the next epoch.

        ``validation``: the (accuracy, loss, logits) of the current student on the full validation
        split, when the caller has just measured them in a pass of its own (the per-instance epoch
        environment reads the validation gradient in the same pass); otherwise measured here."""
        self.scheduler.step()
        if validation is None:
            logits: list[torch.Tensor] = []
            val_acc, val_loss = evaluate(self.student, self.data.val, self.data, keep_logits=logits)
            val_logits = torch.cat(logits)
        else:
            val_acc, val_loss, val_logits = validation
        self.last_val_acc = val_acc
        if self.teacher_val is not None:
            self.last_val_stats = validation_stats(val_logits, self.teacher_val, self.data.val.y)
        if val_acc > self.best_val_acc:
            self.best_val_acc, self.best_epoch = val_acc, self.epoch
            self.best_state = copy.deepcopy(self.student.state_dict())
        self._fold_losses()
        losses = torch.stack(self._epoch_losses).tolist() if self._epoch_losses else []
        train_loss = sum(losses) / max(len(losses), 1)
        if not math.isfinite(train_loss):
            raise RltempError(f"training diverged: the mean training loss of epoch {self.epoch} is {train_loss} "
                              "(try a lower learning rate, or another temperature)")
        t_stats = None
        if self._epoch_t:
            ts = torch.cat([t.reshape(-1) for t in self._epoch_t]).double()
            t_stats = {"n": float(ts.numel()), "sum": float(ts.sum()), "sumsq": float((ts * ts).sum()),
                       "min": float(ts.min()), "max": float(ts.max())}
        stats = EpochStats(
            self.epoch, train_loss, val_acc, val_loss,
            time.perf_counter() - self._epoch_t0,
            Decisions(*(torch.cat(x).cpu() for x in zip(*self._decisions))) if self._decisions else None,
            dict(self.strategy.scalars()) if self.strategy is not None else {}, t_stats,
            self.strategy.schedule_temperature() if self.strategy is not None else None, self.last_val_stats,
            self.strategy.observed() if self.strategy is not None else None,
        )
        self.epoch += 1
        self._reset_epoch_stats()
        if self.strategy is not None and not self.done:
            self.strategy.on_epoch_start(self.epoch, self.cfg.epochs)
        return stats

    def probe(self, epochs: float, temperature: float, initial: dict[str, torch.Tensor] | None = None) -> GlobalState:
        """A look at how this student learns, without touching it: a copy of the student (with the
        weights ``initial``, e.g. those it started with; default its current ones) is distilled at the
        fixed ``temperature`` for ``epochs`` (in (0, 1]) of an epoch, with this run's seed — so the same
        batch order and learning rate as this run's first steps — and then thrown away. Returns the
        copy's state (progress 0: the run has not started): its validation accuracy and statistics, its
        training-loss moving average. Neither this Distiller nor the global random state is changed
        (the copy has its own generator; ``fork_rng``)."""
        if not 0.0 < epochs <= 1.0:
            raise ValueError(f"a probe runs for a fraction of one epoch, in (0, 1], got {epochs}")
        if self.teacher is None:
            raise ValueError("a probe distils from the teacher: this Distiller has none")
        student = copy.deepcopy(self.student)
        if initial is not None:
            student.load_state_dict(initial)
        rng = torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [])
        with rng, torch.enable_grad():  # (a strategy may probe from inside a no-grad forward)
            twin = Distiller(self.cfg, self.data, student, self.teacher, seed=self.seed, device=self.device,
                              external_temperature=True, teacher_cache=self.teacher_cache, teacher_val=self.teacher_val)
            steps = max(1, round(epochs * twin.steps_per_epoch))
            for x, y, idx in twin.epoch_batches():
                twin.train_step(x, y, idx, temperature=temperature)
                if twin.step_count >= steps:
                    break
            logits: list[torch.Tensor] = []
            acc, _ = evaluate(twin.student, self.data.val, self.data, keep_logits=logits)
            stats = validation_stats(torch.cat(logits), self.teacher_val, self.data.val.y)
        return GlobalState(0.0, acc, twin.loss_ema, stats)

    def run_epoch(self) -> EpochStats:
        for x, y, idx in self.epoch_batches():
            self.train_step(x, y, idx)
        return self.end_epoch()

    def fit(self, on_epoch: Callable[[EpochStats], None] | None = None) -> None:
        while not self.done:
            stats = self.run_epoch()
            if on_epoch is not None:
                on_epoch(stats)

    # ------------------------------------------------------------------ state (resume)
    def state_dict(self) -> dict:
        return {
            "student": self.student.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "strategy": self.strategy.state_dict() if self.strategy is not None else {},
            "strategy_lam": float(getattr(self.strategy, "lam", 0.0)),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "step_count": self.step_count,
            "best_val_acc": self.best_val_acc,
            "best_epoch": self.best_epoch,
            "best_state": self.best_state or {},
            "last_val_acc": self.last_val_acc,
            "loss_ema": self.loss_ema,
            "last_val_stats": dataclasses.asdict(self.last_val_stats) if self.last_val_stats is not None else {},
        }

    def load_state_dict(self, state: dict) -> None:
        self.student.load_state_dict(state["student"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.strategy is not None:
            self.strategy.load_state_dict(state["strategy"])
        self.generator.set_state(state["generator"])
        self.epoch, self.step_count = int(state["epoch"]), int(state["step_count"])
        self.best_val_acc, self.best_epoch = float(state["best_val_acc"]), int(state["best_epoch"])
        self.best_state = state["best_state"] or None
        self.last_val_acc, self.loss_ema = float(state["last_val_acc"]), float(state["loss_ema"])
        stats = state.get("last_val_stats") or None
        self.last_val_stats = ValStats(**stats) if stats else None
        if self.strategy is not None and not self.done:
            self.strategy.on_epoch_start(self.epoch, self.cfg.epochs)
