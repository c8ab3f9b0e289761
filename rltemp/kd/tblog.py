"""TensorBoard views of temperature decisions — how hot, for whom, when — shared by distillation
runs and policy training.

Per epoch (``step`` = epoch) for every KD run: ``kd/temperature_mean``. For methods whose
temperature varies per instance, also: ``kd/temperature_std``, ``kd/temperature_p10|p90`` (the
spread), ``kd/temperature_correct_mean`` / ``kd/temperature_wrong_mean`` (instances the student
gets right vs wrong, one chart in the dashboard) and the ``kd/temperature`` histogram. Policy runs
add ``decisions/`` figures (:func:`decision_figure`): temperature against the teacher's top-1
probability and against the student's probability of the true class, coloured by student
correctness (the minority class drawn on top, fixed axes, titled with run and epoch), and the mean
temperature over the epochs so far with its 10–90 % band. Language-model runs with per-token
temperatures add ``tokens/temperature_vs_teacher_entropy`` (:func:`token_entropy_figure`, the last
epoch) and ``tokens/passage`` (:func:`passage_figure`: held-out text, each character shaded by its
temperature). :data:`LAYOUT` is the dashboard: a
custom-scalars layout written once at the top of a bench or quickstart folder (:func:`write_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass
class Decisions:
    """One epoch's per-instance decisions (CPU tensors of equal length)."""

    temperature: torch.Tensor  # the student-side temperature of every instance
    teacher_conf: torch.Tensor  # the teacher's top-1 probability
    student_p_true: torch.Tensor  # the student's probability of the true class
    correct: torch.Tensor  # bool: the student's top-1 is the label
    teacher_entropy: torch.Tensor | None = None  # the teacher's entropy in nats (next-character uncertainty)


def spread(t: torch.Tensor) -> dict[str, float]:
    t = t.float()
    q = torch.quantile(t, torch.tensor([0.1, 0.9])) if len(t) > 1 else torch.stack([t[0], t[0]])
    return {"mean": float(t.mean()), "std": float(t.std()) if len(t) > 1 else 0.0, "p10": float(q[0]),
            "p90": float(q[1])}


def log_decisions(writer: Any, step: int, d: Decisions) -> dict[str, float]:
    """Per-instance temperature scalars and the histogram of one epoch; returns the spread."""
    s = spread(d.temperature)
    for k, v in s.items():
        writer.add_scalar(f"kd/temperature_{k}", v, step)
    c = d.correct.bool()
    for name, mask in (("correct", c), ("wrong", ~c)):
        if mask.any():
            writer.add_scalar(f"kd/temperature_{name}_mean", float(d.temperature[mask].float().mean()), step)
    writer.add_histogram("kd/temperature", d.temperature.float(), step)
    return s


def decision_figure(d: Decisions, title: str, t_range: tuple[float, float], history: list[dict[str, float]],
                    max_points: int = 3000):  # noqa: ANN201
    """Three panels: T vs teacher confidence, T vs the student's true-class probability (coloured by
    correctness, the smaller group drawn last, on top), and the mean T per epoch with its 10–90 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lo, hi = t_range
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(d.temperature), generator=g)[:max_points]
    t, conf, pt, ok = (x[idx] for x in (d.temperature.float(), d.teacher_conf.float(), d.student_p_true.float(),
                                        d.correct.bool()))
    groups = [(ok, "tab:green", "student right"), (~ok, "tab:red", "student wrong")]
    groups.sort(key=lambda gr: -int(gr[0].sum()))  # majority first, minority on top
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, x, label in ((axes[0], conf, "teacher top-1 probability"), (axes[1], pt,
                                                                        "student probability of the true class")):
        for mask, colour, name in groups:
            ax.scatter(x[mask].numpy(), t[mask].numpy(), s=4, alpha=0.45, c=colour, label=f"{name} ({int(mask.sum())})")
        ax.set_xlim(0, 1)
        ax.set_ylim(lo * 0.95, hi * 1.05)
        ax.set_yscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("temperature")
    axes[0].legend(loc="upper left", fontsize=7, markerscale=3)
    _schedule_panel(axes[2], history, lo, hi)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _plain_ticks(axis: Any) -> None:
    from matplotlib.ticker import ScalarFormatter

    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(ScalarFormatter())


def _log_t_axis(ax: Any, t: torch.Tensor) -> None:
    ax.set_yscale("log")
    ax.set_ylim(float(t.min()) * 0.9, float(t.max()) * 1.1)
    ax.set_ylabel("temperature")
    _plain_ticks(ax.yaxis)


def token_entropy_figure(d: Decisions, title: str, max_points: int = 4000, bins: int = 12):  # noqa: ANN201
    """Per token of the last epoch: the temperature against the teacher's next-character entropy (a
    random sample of points) with the mean temperature per entropy bin (equal-count bins over all tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, h = d.temperature.float(), d.teacher_entropy.float()
    idx = torch.randperm(len(t), generator=torch.Generator().manual_seed(0))[:max_points]
    edges = torch.quantile(h, torch.linspace(0, 1, bins + 1)).unique()
    which = torch.bucketize(h, edges[1:-1])
    in_bin = [which == b for b in range(len(edges) - 1)]
    centres, means = zip(*[(float(h[m].mean()), float(t[m].mean())) for m in in_bin if m.any()])
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.scatter(h[idx].numpy(), t[idx].numpy(), s=3, alpha=0.3, c="tab:blue", label=f"tokens ({len(idx)} of {len(t)})")
    ax.plot(centres, means, "k.-", label="mean per entropy bin")
    ax.set_xlabel("teacher next-character entropy (nats)")
    _log_t_axis(ax, t)
    ax.legend(loc="best", fontsize=7, markerscale=3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def passage_figure(text: str, temperature: torch.Tensor, title: str, width: int = 64):  # noqa: ANN201
    """A held-out passage, one cell per character, each shaded by the temperature its position was
    distilled at (log colour scale; the next character is the one predicted)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    t = temperature.float()
    rows = -(-len(text) // width)
    norm = LogNorm(float(t.min()), max(float(t.max()), float(t.min()) * 1.001))
    grid = torch.full((rows, width), float("nan"))
    grid.view(-1)[: len(text)] = t[: len(text)]
    fig, ax = plt.subplots(figsize=(width * 0.16 + 1.2, rows * 0.28 + 0.9))
    im = ax.imshow(grid.numpy(), cmap="coolwarm", norm=norm, aspect="auto", interpolation="nearest")
    for i, c in enumerate(text):
        ax.text(i % width, i // width, c if c.isprintable() else "·", ha="center", va="center", fontsize=7,
                family="monospace")
    ax.set_xticks([])
    ax.set_yticks([])
    _plain_ticks(fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01, label="temperature").ax.yaxis)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _schedule_panel(ax: Any, history: list[dict[str, float]], lo: float, hi: float) -> None:
    e = list(range(len(history)))
    ax.fill_between(e, [h["p10"] for h in history], [h["p90"] for h in history], alpha=0.25, label="10–90 %")
    ax.plot(e, [h["mean"] for h in history], "k-", label="mean")
    ax.set_ylim(lo * 0.95, hi * 1.05)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("temperature")
    ax.legend(loc="upper right", fontsize=7)


def schedule_figure(episodes: list[dict[str, Any]], title: str, t_range: tuple[float, float]):  # noqa: ANN201
    """Policy training: per episode (recent ones darker), the sampled schedule (thin) and the
    deterministic one the policy would choose (bold), against the epoch within the episode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    n = len(episodes)
    for i, ep in enumerate(episodes):
        shade = 0.25 + 0.75 * (i + 1) / n
        ax.plot(ep["temperature"], color=(0.8 * (1 - shade), 0.4, shade), lw=0.7, alpha=0.5)
        ax.plot(ep["temperature_deterministic"], color=(0.8 * (1 - shade), 0.4, shade), lw=2.0,
                label=f"episode {ep['episode']}" if i in (0, n - 1) else None)
    ax.set_ylim(t_range[0] * 0.95, t_range[1] * 1.05)
    ax.set_yscale("log")
    ax.set_xlabel("epoch within the episode")
    ax.set_ylabel("temperature")
    ax.legend(loc="upper right", fontsize=7, title="bold: deterministic, thin: sampled", title_fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_hparams(writer: Any, hparams: dict[str, Any], metrics: dict[str, float], step: int = 0) -> None:
    """One row of TensorBoard's HPARAMS table in ``writer``'s own event file (``SummaryWriter.add_hparams``
    would open a second writer and file for it)."""
    from torch.utils.tensorboard.summary import hparams as hparams_summary

    exp, ssi, sei = hparams_summary(hparams, metrics)
    for summary in (exp, ssi, sei):
        writer.file_writer.add_summary(summary)
    for k, v in metrics.items():
        writer.add_scalar(k, v, step)


# The dashboard (TensorBoard's CUSTOM SCALARS tab). Tags are regular expressions over every run.
LAYOUT = {
    "1 · how hot, when (every KD method)": {
        "mean temperature per epoch": ["Multiline", [r"^kd/temperature_mean$"]],
        "validation accuracy per epoch": ["Multiline", [r"^eval/val_acc$"]],
    },
    "2 · for whom (methods with per-instance temperatures)": {
        "students right vs wrong: mean temperature": ["Multiline", [r"^kd/temperature_(correct|wrong)_mean$"]],
        "spread: 10th and 90th percentile": ["Multiline", [r"^kd/temperature_p(10|90)$"]],
    },
    "3 · policy training": {
        "schedule the policy would choose (deterministic), first / middle / last epoch, per episode":
            ["Multiline", [r"^train_schedule/T_(first|middle|last)_epoch_deterministic$"]],
        "episode return (gain over the reference, in val-accuracy points)": ["Multiline",
                                                                             [r"^train_schedule/episode_return$"]],
        "critic: explained variance": ["Multiline", [r"^train/explained_variance$"]],
        "run-level policy, per training pair: first- and last-epoch temperature it would choose":
            ["Multiline", [r"^train_schedule/pair/.+/T_(first|last)_epoch_deterministic$"]],
        "run-level policy, per training pair: the return (gain over the reference run)":
            ["Multiline", [r"^train_schedule/pair/.+/episode_return$"]],
    },
}


def layout_tags() -> list[str]:
    return [t for cat in LAYOUT.values() for _, tags in cat.values() for t in tags]


def write_layout(folder: str | Path) -> None:
    """Write the dashboard layout into its own small event file at the top of ``folder``."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(Path(folder) / "dashboard")) as w:
        w.add_custom_scalars(LAYOUT)
