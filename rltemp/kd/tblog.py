"""TensorBoard views of temperature decisions, shared by distillation and policy training.

Tags: ``kd/temperature`` (histogram), ``kd/temperature_mean|std``, the same split by whether the
student got the instance right (``kd/temperature_correct_mean|std``, ``kd/temperature_wrong_mean|std``),
and ``kd/temperature_vs_confidence``: a scatter figure of temperature against the teacher's top-1
probability, coloured by student correctness.
"""

from __future__ import annotations

from typing import Any

import torch


def log_decisions(writer: Any, step: int, temperature: torch.Tensor, teacher_conf: torch.Tensor | None = None,
                  student_correct: torch.Tensor | None = None, figure: bool = False, max_points: int = 3000) -> None:
    """Log per-instance temperatures (student side for pairs) of one epoch / rollout."""
    if writer is None or temperature is None or len(temperature) == 0:
        return
    t = temperature.float().cpu()
    writer.add_histogram("kd/temperature", t, step)
    writer.add_scalar("kd/temperature_mean", float(t.mean()), step)
    writer.add_scalar("kd/temperature_std", float(t.std()) if len(t) > 1 else 0.0, step)
    if student_correct is not None:
        c = student_correct.bool().cpu()
        for name, mask in (("correct", c), ("wrong", ~c)):
            if mask.any():
                sel = t[mask]
                writer.add_scalar(f"kd/temperature_{name}_mean", float(sel.mean()), step)
                writer.add_scalar(f"kd/temperature_{name}_std", float(sel.std()) if len(sel) > 1 else 0.0, step)
    if figure and teacher_conf is not None and student_correct is not None:
        writer.add_figure("kd/temperature_vs_confidence",
                          temperature_figure(t, teacher_conf.float().cpu(), student_correct.bool().cpu(), max_points),
                          step)


def temperature_figure(t: torch.Tensor, conf: torch.Tensor, correct: torch.Tensor, max_points: int = 3000):  # noqa: ANN201
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(t), generator=g)[:max_points]
    t, conf, correct = t[idx], conf[idx], correct[idx]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mask, colour, label in ((correct, "tab:green", "student correct"), (~correct, "tab:red", "student wrong")):
        ax.scatter(conf[mask].numpy(), t[mask].numpy(), s=4, alpha=0.4, c=colour, label=label)
    ax.set_xlabel("teacher top-1 probability")
    ax.set_ylabel("temperature")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig
