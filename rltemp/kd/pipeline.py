"""Whole runs: train (or load, or reuse a cached) teacher; distil a student into a run folder.

The CLI and the benchmark call these; they in turn only wire config -> data, models, strategy ->
:class:`~rltemp.kd.trainer.Distiller`, and log to TensorBoard.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rltemp.config import Config
from rltemp.data import DataBundle, load_dataset
from rltemp.data.base import Split
from rltemp.errors import RltempError
from rltemp.kd.loss import per_position
from rltemp.kd.strategies import StrategyContext, TemperatureStrategy, build_strategy
from rltemp.kd.tblog import decision_figure, log_decisions, passage_figure, token_entropy_figure, write_hparams
from rltemp.kd.trainer import Distiller, EpochStats, evaluate, predict_logits
from rltemp.models import build_model, load_checkpoint, load_state_strict, save_checkpoint
from rltemp.paths import atomic_write_bytes, cache_dir
from rltemp.runs import RunDir

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RltempError(f"device={name} was asked for but CUDA is not available; use device=cpu or auto")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


def build_teacher_model(cfg: Config, data: DataBundle) -> nn.Module:
    return build_model(cfg.teacher.model, data.input_shape, data.num_classes, cfg.teacher.options)


def build_student_model(cfg: Config, data: DataBundle, seed: int) -> nn.Module:
    seed_everything(seed)  # initial weights depend on the seed only
    return build_model(cfg.student.model, data.input_shape, data.num_classes, cfg.student.options)


def data_fingerprint(data: DataBundle) -> str:
    """SHA-1 of the training split's bytes: a cached teacher is only reused on the very same data
    (dataset defaults may change between versions even when the config does not)."""
    h = hashlib.sha1()
    for t in (data.train.x, data.train.y):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _non_default(obj: Any) -> dict[str, Any]:
    """The dataclass fields that differ from their defaults (so adding a field keeps old keys valid)."""
    default = type(obj)()
    return {k: v for k, v in asdict(obj).items() if getattr(default, k) != v}


def teacher_data(cfg: Config, data: DataBundle, device: torch.device) -> DataBundle:
    """The data the teacher trains on: the student's, or the same dataset with ``teacher.data_options``."""
    if not cfg.teacher.data_options:
        return data
    tcfg = replace(cfg.data, options={**cfg.data.options, **cfg.teacher.data_options})
    return load_dataset(tcfg).to(device)


def teacher_cache_path(cfg: Config, data: DataBundle) -> Path:
    """Cached teachers are keyed by everything that determines them: data, model, recipe, seed."""
    key = {"data": cfg.data.name, "data_sha1": data_fingerprint(data), "model": cfg.teacher.model,
           "options": cfg.teacher.options, "train": _non_default(cfg.teacher.train), "seed": cfg.teacher.seed}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return cache_dir("teachers") / f"{cfg.data.name}-{cfg.teacher.model}-{digest}.pt"


def shipped_teacher_roots() -> list[Path]:
    """Where shipped teachers lie (``./envs/teachers`` and the source tree's), under the name of the
    cache file their recipe would make: a shipped teacher serves exactly the configs that would train it."""
    roots = [Path.cwd() / "envs" / "teachers", Path(__file__).resolve().parents[2] / "envs" / "teachers"]
    return list(dict.fromkeys(roots))


def shipped_teacher(name: str) -> Path | None:
    return next((r / name for r in shipped_teacher_roots() if (r / name).is_file()), None)


def train_teacher(cfg: Config, data: DataBundle, device: torch.device, progress: bool = True,
                  writer: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    seed_everything(cfg.teacher.seed)
    model = build_teacher_model(cfg, data)
    trainer = Distiller(cfg.teacher.train, data, model, seed=cfg.teacher.seed, device=device)
    t0 = time.perf_counter()
    _fit_with_progress(trainer, f"teacher {cfg.teacher.model}", progress, EpochLogger(writer) if writer else None)
    test_acc, test_loss = evaluate(trainer.student, data.test, data)
    return trainer.student, {
        "test_acc": test_acc, "test_loss": test_loss, "val_acc": trainer.best_val_acc,
        "epochs": cfg.teacher.train.epochs, "wall_time_s": time.perf_counter() - t0,
    }


def get_teacher(cfg: Config, data: DataBundle, device: torch.device, progress: bool = True) -> nn.Module:
    """The teacher from ``teacher.checkpoint`` (weights-only, strict), else a shipped one made by the
    same recipe (:func:`shipped_teacher`), else the cache, else train it."""
    model = build_teacher_model(cfg, data)
    if cfg.teacher.checkpoint:
        ckpt = load_checkpoint(cfg.teacher.checkpoint)
        load_state_strict(model, ckpt["model"], f"teacher checkpoint {cfg.teacher.checkpoint}")
        return model.to(device).eval()
    tdata = teacher_data(cfg, data, device)
    path = teacher_cache_path(cfg, tdata)
    shipped = shipped_teacher(path.name)
    if shipped is not None and not path.exists():  # made by the same recipe on the same data (envs/teachers/)
        load_state_strict(model, load_checkpoint(shipped)["model"], f"shipped teacher {shipped}")
        log.info("using the shipped teacher %s", shipped)
        return model.to(device).eval()
    if path.exists():
        try:
            load_state_strict(model, load_checkpoint(path)["model"], f"cached teacher {path}")
            log.info("using cached teacher %s", path)
            return model.to(device).eval()
        except RltempError as e:  # the cache is rltemp's own file: a damaged one is retrained, not blamed on the user
            log.warning("the cached teacher %s is damaged (%s); training it again", path, e)
            model = build_teacher_model(cfg, data)
    log.info("no cached teacher at %s: training one", path)
    model, res = train_teacher(cfg, tdata, device, progress)
    save_checkpoint(path, model, {"arch": cfg.teacher.model, "test_acc": res["test_acc"], "val_acc": res["val_acc"]})
    log.info("teacher: val %.4f test %.4f (%.1fs), cached at %s", res["val_acc"], res["test_acc"], res["wall_time_s"],
             path)
    return model.eval()


def cached_teacher(cfg: Config, data: DataBundle, device: torch.device) -> nn.Module | None:
    """The teacher when it exists already (a checkpoint or the cache), else ``None``: never trains one."""
    path = teacher_cache_path(cfg, teacher_data(cfg, data, device))
    if cfg.teacher.checkpoint or path.exists() or shipped_teacher(path.name) is not None:
        return get_teacher(cfg, data, device, progress=False)
    return None


ENTROPY_QUANTILES = 4


@torch.no_grad()
def sequence_metrics(student: nn.Module, teacher: nn.Module, split: Split, data: DataBundle) -> dict[str, Any]:
    """Language-model metrics of ``student`` against ``teacher`` on ``split`` (issue 30), per character:
    the teacher's cross-entropy (nats/char; the gap a student can close is its CE run's CE − this), and
    the student's cross-entropy in each quartile of the teacher's next-character entropy
    H_t = −Σ p_t log p_t (the edges are H_t's quantiles 0, ¼, ½, ¾, 1 on this split): where the
    teacher is sure (inside a word) versus unsure (a word's start)."""
    zs, y = per_position(predict_logits(student, split, data), split.y)
    zt, _ = per_position(predict_logits(teacher, split, data))
    ce = F.cross_entropy(zs, y, reduction="none")
    log_pt = F.log_softmax(zt, -1)
    h = (-(log_pt.exp() * log_pt).sum(-1)).cpu().numpy()
    edges = np.quantile(h, np.linspace(0, 1, ENTROPY_QUANTILES + 1))
    bucket = torch.as_tensor(np.clip(np.searchsorted(edges[1:-1], h, side="right"), 0, ENTROPY_QUANTILES - 1))
    ce = ce.cpu()
    return {"teacher_test_loss": float(F.cross_entropy(zt, y)), "teacher_entropy_edges": edges.tolist(),
            "test_loss_by_teacher_entropy": [float(ce[bucket == i].mean()) if bool((bucket == i).any()) else None
                                             for i in range(ENTROPY_QUANTILES)]}


def final_metrics(cfg: Config, student: nn.Module, teacher: nn.Module | None, data: DataBundle,
                  device: torch.device) -> dict[str, Any]:
    """What every run reports at its end: last-epoch test and validation accuracy and cross-entropy,
    and for a language model :func:`sequence_metrics` (against ``teacher``, or the teacher when it
    exists already)."""
    test_acc, test_loss = evaluate(student, data.test, data)
    val_acc, val_loss = evaluate(student, data.val, data)
    out: dict[str, Any] = {"test_acc": test_acc, "test_loss": test_loss, "val_acc": val_acc, "val_loss": val_loss}
    if data.test.y.dim() == 2:  # a sequence model: per-character metrics
        ref = teacher if teacher is not None else cached_teacher(cfg, data, device)
        if ref is not None:
            out.update(sequence_metrics(student, ref, data.test, data))
    return out


# --------------------------------------------------------------------------- logging


class EpochLogger:
    """Writes one distillation run's TensorBoard views epoch by epoch (:mod:`rltemp.kd.tblog`):
    losses, accuracy, the temperature per epoch, per-instance decision scalars and histograms for
    methods that vary T per instance, and decision figures for policy runs that set a temperature per instance."""

    def __init__(self, writer: Any, title: str = "", figures: bool = False,
                 t_range: tuple[float, float] = (1.0, 10.0), tokens: bool = False, epochs: int = 0) -> None:
        self.writer, self.title, self.figures, self.t_range = writer, title, figures, t_range
        # three decision figures per run, at its first, middle and last epoch: a figure is the costly part of
        # logging (~0.5 s: matplotlib's render; benchmarks/policy_overhead.py), the scalars show every epoch
        self.figure_epochs = {0, epochs // 2}
        self.tokens = tokens  # a language model's run: the last epoch's per-token view too
        self.history: list[dict[str, float]] = []

    @classmethod
    def for_run(cls, writer: Any, cfg: Config, tokens: bool) -> EpochLogger:
        """The logger of a distill run of ``cfg`` (figures for policy runs; ``tokens``: a language model's)."""
        spec = cfg.distill.temperature
        return cls(writer, title=f"{cfg.name} / {method_name(spec)} / seed {cfg.seed}",
                   figures=spec.startswith("policy:"), t_range=(cfg.env.t_min, cfg.env.t_max), tokens=tokens,
                   epochs=cfg.distill.epochs)

    def __call__(self, stats: EpochStats, lr: float, last: bool = False) -> None:
        w, e = self.writer, stats.epoch
        if w is None:
            return
        w.add_scalar("kd/loss", stats.train_loss, e)
        w.add_scalar("kd/lr", lr, e)
        w.add_scalar("eval/val_acc", stats.val_acc, e)
        w.add_scalar("eval/val_loss", stats.val_loss, e)
        w.add_scalar("time/epoch_s", stats.seconds, e)
        if stats.decisions is not None:  # methods whose temperature varies per instance
            self.history.append(log_decisions(w, e, stats.decisions))
            if self.figures and (last or e in self.figure_epochs):
                fig = decision_figure(stats.decisions, f"{self.title} — epoch {e}", self.t_range, self.history)
                w.add_figure("decisions/temperature_vs_confidence_and_progress", fig, e)
            if self.tokens and last and stats.decisions.teacher_entropy is not None:
                w.add_figure("tokens/temperature_vs_teacher_entropy",
                             token_entropy_figure(stats.decisions, f"{self.title} — epoch {e}"), e)
        elif stats.temperature_stats is not None:  # one temperature per step: its mean
            ts = stats.temperature_stats
            w.add_scalar("kd/temperature_mean", ts["sum"] / ts["n"], e)
            # a schedule-only policy draws no figure: its schedule is this scalar, and a figure would cost
            # matplotlib's import and a render (~0.4 s, 8 % of a default-pair run; benchmarks/policy_overhead.py)
        if stats.schedule_temperature is not None:
            w.add_scalar("policy/schedule_temperature", stats.schedule_temperature, e)
        for name, value in (stats.observed or {}).items():  # what the policy's decision in this epoch read
            w.add_scalar(f"policy/observed/{name}", value, e)
        for k, v in stats.extra.items():
            w.add_scalar(k, v, e)


@torch.no_grad()
def log_passage(writer: Any, trainer: Distiller, teacher: nn.Module, data: DataBundle, title: str,
                chars: int = 512) -> None:
    """``tokens/passage``: the first ``chars`` characters of the first validation sequence, each shaded
    by the temperature the run's strategy sets at its position once training is done (the finished
    student and the teacher in eval mode; called after the last epoch, so no run state is affected)."""
    first = Split(data.val.x[:1], data.val.y[:1]).to(trainer.device)
    z_s, z_t = (per_position(predict_logits(m, first, data)[:, :chars].float())[0] for m in (trainer.student, teacher))
    y = first.y[:, :chars]
    t = trainer.strategy(z_t, z_s, y.reshape(-1), 1.0)
    t = t[:, 1] if t.dim() == 2 else t
    vocab = data.class_names or []
    text = "".join(vocab[int(i)] for i in y[0]) if vocab else ""  # position i predicts (and is drawn as) y[i]
    if text:
        writer.add_figure("tokens/passage", passage_figure(text, t.cpu(), f"{title} — held-out passage"),
                          trainer.epoch)


def logged_epoch(trainer: Distiller, log: EpochLogger | None) -> EpochStats:
    """One epoch of ``trainer``, logged with the learning rate it trained at."""
    lr = trainer.optimizer.param_groups[0]["lr"]
    stats = trainer.run_epoch()
    if log is not None:
        log(stats, lr, last=trainer.done)
    return stats


def _fit_with_progress(trainer: Distiller, desc: str, progress: bool, log: EpochLogger | None,
                       on_epoch: Any = None) -> None:
    from tqdm.auto import tqdm

    bar = tqdm(total=trainer.cfg.epochs, initial=trainer.epoch, desc=desc, unit="epoch",
               disable=not progress, leave=False)
    try:
        while not trainer.done:
            stats = logged_epoch(trainer, log)
            bar.set_postfix(val_acc=f"{stats.val_acc:.4f}")
            bar.update(1)
            if on_epoch is not None:
                on_epoch(stats)
    finally:
        bar.close()


def combine_temperatures(epochs: list[dict[str, float]]) -> dict[str, float] | None:
    """Mean, sample std, min and max over all the epochs' temperatures."""
    if not epochs:
        return None
    n = sum(e["n"] for e in epochs)
    mean = sum(e["sum"] for e in epochs) / n
    var = max(sum(e["sumsq"] for e in epochs) - n * mean * mean, 0.0) / (n - 1) if n > 1 else 0.0
    return {"mean": mean, "std": var**0.5, "min": min(e["min"] for e in epochs), "max": max(e["max"] for e in epochs)}


def temperature_summary(temps: list[torch.Tensor]) -> dict[str, float] | None:
    if not temps:
        return None
    t = torch.cat(temps).float()
    return {"mean": float(t.mean()), "std": float(t.std()) if len(t) > 1 else 0.0,
            "min": float(t.min()), "max": float(t.max())}


# --------------------------------------------------------------------------- runs


def prepare_data(cfg: Config) -> tuple[DataBundle, torch.device]:
    """The dataset on its device, with both models built once to surface option errors — everything
    that can fail on bad input before any run folder is created (the environments, which set the
    temperatures themselves, need no more)."""
    device = resolve_device(cfg.device)
    data = load_dataset(cfg.data)
    build_model(cfg.student.model, data.input_shape, data.num_classes, cfg.student.options)
    build_teacher_model(cfg, data)
    return data.to(device), device


def prepare(cfg: Config) -> tuple[DataBundle, torch.device, TemperatureStrategy | None]:
    """:func:`prepare_data` and the run's temperature strategy (``None`` for ``ce``)."""
    data, device = prepare_data(cfg)
    return data, device, build_strategy(cfg.distill.temperature, StrategyContext(data.num_classes, cfg.distill.epochs))


def method_name(spec: str) -> str:
    """A short method name for tables and TensorBoard: ``policy:/long/path/run`` -> ``policy:run``."""
    name, _, rest = spec.partition(":")
    if name in ("policy", "online") and rest:
        return f"{name}:{Path(rest).stem if rest.endswith(('.json', '.yaml')) else Path(rest).name}"
    return spec


def run_hparams(cfg: Config, student: nn.Module) -> dict[str, Any]:
    """The one hparams schema of every distill run (TensorBoard's HPARAMS table): the pair (the
    config's name; a bench sets it to the pair's name), the method, the student with its size, the seed."""
    from rltemp.models import count_params

    return {"pair": cfg.name, "method": method_name(cfg.distill.temperature),
            "student": f"{cfg.student.model} ({count_params(student) / 1e3:.0f}k params)", "seed": cfg.seed}


def run_distill(cfg: Config, out: str | Path | None = None, resume: str | Path | None = None,
                progress: bool = True, runs_root: str | Path = "runs") -> dict[str, Any]:
    """Distil one student; write the run folder; return ``results.json``'s content."""
    from torch.utils.tensorboard import SummaryWriter

    data, device, strategy = prepare(cfg)
    teacher = get_teacher(cfg, data, device, progress) if strategy is not None else None
    if resume is not None:
        run = RunDir(Path(resume))
    else:
        run = RunDir.create("distill", cfg.name, out, cfg.to_dict(), runs_root)
        run.write_classes(data.class_names)
    student = build_student_model(cfg, data, cfg.seed)
    trainer = Distiller(cfg.distill, data, student, teacher, strategy, seed=cfg.seed, device=device)
    state_path = run.path / "state.pt"
    # per-epoch temperature statistics and schedule decisions, kept in state.pt so a resumed run reports the whole run
    per_epoch: list[dict[str, float]] = []
    schedule: list[float] = []
    observed: list[dict[str, Any]] = []  # what a policy's decisions read: {"epoch": e, feature: value, ...}
    if resume is not None and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=True)
        trainer.load_state_dict(state)
        per_epoch, schedule = list(state.get("temperature_epochs", [])), list(state.get("schedule", []))
        observed = list(state.get("observed", []))
        log.info("resumed %s at epoch %d", run.path, trainer.epoch)
    writer = SummaryWriter(str(run.tb))
    t0 = time.perf_counter()

    def on_epoch(stats: EpochStats) -> None:
        if stats.temperature_stats is not None:
            per_epoch.append(stats.temperature_stats)
        if stats.schedule_temperature is not None:
            schedule.append(stats.schedule_temperature)
        if stats.observed:
            observed.append({"epoch": stats.epoch, **stats.observed})
        buf = io.BytesIO()
        torch.save({**trainer.state_dict(), "temperature_epochs": per_epoch, "schedule": schedule,
                    "observed": observed}, buf)
        atomic_write_bytes(state_path, buf.getvalue())

    try:
        spec = cfg.distill.temperature
        tokens = data.test.y.dim() == 2
        log_epochs = EpochLogger.for_run(writer, cfg, tokens)
        _fit_with_progress(trainer, f"distill {spec}", progress, log_epochs, on_epoch)
        wall = time.perf_counter() - t0
        if tokens and trainer.record_decisions and teacher is not None:
            log_passage(writer, trainer, teacher, data, log_epochs.title)
        final = final_metrics(cfg, trainer.student, teacher, data, device)
        test_acc, val_acc = final["test_acc"], final["val_acc"]
        best_test = None
        if trainer.best_state is not None:
            best = build_student_model(cfg, data, cfg.seed).to(device)
            best.load_state_dict(trainer.best_state)
            best_test, _ = evaluate(best, data.test, data)
            save_checkpoint(run.path / "best.pt", best, {"arch": cfg.student.model, "epoch": trainer.best_epoch})
        save_checkpoint(run.path / "last.pt", trainer.student, {"arch": cfg.student.model, "epoch": trainer.epoch})
        results = {
            **final,  # test / val accuracy and CE (and a language model's metrics)
            "best_val_acc": trainer.best_val_acc,
            "best_val_epoch": trainer.best_epoch,
            "test_acc_at_best_val": best_test,
            "epochs": trainer.epoch,
            "kd_steps": trainer.step_count,
            "wall_time_s": wall,
            "temperature": combine_temperatures(per_epoch),
            "temperature_by_epoch": [e["sum"] / e["n"] for e in per_epoch] or None,
            "schedule": schedule or None,
            "observed": observed or None,
            "method": cfg.distill.temperature,
            "seed": cfg.seed,
            "student": cfg.student.model,
            "teacher": cfg.teacher.model if teacher is not None else None,
            "dataset": cfg.data.name,
            "device": str(device),
        }
        writer.add_scalar("eval/test_acc", test_acc, trainer.epoch)
        write_hparams(writer, run_hparams(cfg, student), {"hparam/test_acc": test_acc, "hparam/val_acc": val_acc,
                                                          "hparam/wall_time_s": wall})
    finally:
        writer.close()
    state_path.unlink(missing_ok=True)
    run.write_results(results)
    return {**results, "run_dir": str(run.path)}


def run_teacher(cfg: Config, out: str | Path | None = None, progress: bool = True,
                runs_root: str | Path = "runs") -> dict[str, Any]:
    """Train a teacher into a run folder (``teacher.pt``) and also fill the teacher cache."""
    from torch.utils.tensorboard import SummaryWriter

    device = resolve_device(cfg.device)
    data = teacher_data(cfg, load_dataset(cfg.data).to(device), device)
    build_teacher_model(cfg, data)
    run = RunDir.create("teacher", cfg.name, out, cfg.to_dict(), runs_root)
    run.write_classes(data.class_names)
    writer = SummaryWriter(str(run.tb))
    try:
        model, res = train_teacher(cfg, data, device, progress, writer)
    finally:
        writer.close()
    meta = {"arch": cfg.teacher.model, "test_acc": res["test_acc"], "val_acc": res["val_acc"]}
    save_checkpoint(run.path / "teacher.pt", model, meta)
    if not cfg.teacher.checkpoint:
        save_checkpoint(teacher_cache_path(cfg, data), model, meta)
    results = {**res, "teacher": cfg.teacher.model, "dataset": cfg.data.name,
               "checkpoint": str(run.path / "teacher.pt")}
    run.write_results(results)
    return {**results, "run_dir": str(run.path)}
