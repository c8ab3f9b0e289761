"""Per-instance credit for the per-instance environment (online mode): the epoch's reward, shared
by the instances whose updates earned it.

The epoch's reward R (scale · Δ validation accuracy, :mod:`rltemp.envs.instance_epoch_env`) is
decomposed over the n instances the epoch trained on, r_i = (R + c_i − mean c) / n, so that the
r_i sum to R exactly (tested). c_i is the cosine between instance i's update and the validation
descent direction, to first order (Koh & Liang 2017's influence, restricted to the student's last
layer as in data-selection work such as TracIn, Pruthi et al. 2020): for logits z = W h + b,
instance i's loss gradient is g_i = [δ_i h_iᵀ, δ_i] with δ_i = ∂L_i/∂z_i (CE + KD at the
temperature chosen for it), and the validation gradient is G = [mean_v δ_v h_vᵀ, mean_v δ_v] (CE,
closed form: δ_v = softmax(z_v) − onehot(y_v)). c_i = −⟨g_i, G⟩ / (‖g_i‖ ‖G‖) ∈ [−1, 1]: positive
when the instance's update lowers the validation loss. The cosine ignores the magnitude of g_i, so
inflating an instance's loss scale (T² included) cannot raise its credit (tested); sharing R by KD
loss instead could be bought that way (an agent drove every T to 10: RESULTS, the previous design).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rltemp.data.base import DataBundle, Split
from rltemp.errors import ConfigError
from rltemp.kd.loss import per_position


def influence(reward: float, align: torch.Tensor) -> torch.Tensor:
    """Per-instance rewards (n,) summing to ``reward``: R / n + (c_i − mean c) / n for alignments c (n,)."""
    a = align.double()[None]
    n = a.shape[-1]
    return (torch.full(a.shape, reward / n, dtype=torch.float64) + (1.0 / n) * (a - a.mean(-1, keepdim=True)))[0]


# --------------------------------------------------------------------------- last-layer gradients


def last_linear(model: nn.Module, num_classes: int) -> nn.Linear:
    """The classifier: the last ``nn.Linear`` with ``num_classes`` outputs (influence credit reads
    its input h and the gradient at its output)."""
    found = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == num_classes]
    if not found:
        raise ConfigError(f"per-instance credit needs a student whose last layer is an nn.Linear with "
                          f"{num_classes} outputs; {type(model).__name__} has none")
    return found[-1]


class InputCapture:
    """Forward hook that keeps the (detached) input of a layer: the penultimate features h."""

    def __init__(self, layer: nn.Module) -> None:
        self.h: torch.Tensor | None = None
        self.handle = layer.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self.h = inputs[0].detach()

    def remove(self) -> None:
        self.handle.remove()


@torch.no_grad()
def evaluate_with_gradient(model: nn.Module, capture: InputCapture, split: Split, data: DataBundle,
                           batch_size: int = 1024, keep_logits: list[torch.Tensor] | None = None,
                           ) -> tuple[float, float, torch.Tensor, torch.Tensor]:
    """Accuracy, mean CE and the mean CE gradient of the last layer (weight (C, H), bias (C,)) on
    ``split``, in one eval-mode pass: δ_v = softmax(z_v) − onehot(y_v), G = mean δ_v h_vᵀ (each
    batch's logits appended to ``keep_logits`` when given). For sequence logits (B, L, V) every
    position is one v, as in :func:`~rltemp.kd.trainer.evaluate`."""
    was_training = model.training
    model.eval()
    correct, loss_sum, g_w, g_b, count = 0, 0.0, None, None, 0
    for x, y, _ in split.batches(batch_size):
        raw = model(data.preprocess(x, False, None)).float()
        h = capture.h.float()
        h = h.reshape(-1, h.shape[-1]) if raw.dim() == 3 else h.flatten(1)  # a sequence: one row per position
        z, y = per_position(raw, y)
        count += len(y)
        logp = F.log_softmax(z, -1)  # one pass for the loss and the gradient
        rows = torch.arange(len(y), device=y.device)
        loss_sum -= float(logp[rows, y].sum())
        delta = logp.exp()
        delta[rows, y] -= 1.0
        gw, gb = delta.T @ h, delta.sum(0)
        g_w, g_b = (gw, gb) if g_w is None else (g_w + gw, g_b + gb)
        correct += int((z.argmax(-1) == y).sum())
        if keep_logits is not None:
            keep_logits.append(raw)
    model.train(was_training)
    n = max(count, 1)
    return correct / n, loss_sum / n, g_w / n, g_b / n


def alignment(delta: torch.Tensor, h: torch.Tensor, g_w: torch.Tensor, g_b: torch.Tensor,
              dtype: torch.dtype = torch.float64, rank: int = 0) -> torch.Tensor:
    """c_i = −⟨g_i, G⟩ / (‖g_i‖ ‖G‖) for g_i = [δ_i h_iᵀ, δ_i], G = [g_w, g_b]; (B,) in [−1, 1].

    Invariant to rescaling δ_i (an instance's loss scale, T² included) by any positive factor.
    ``dtype``: the precision of the products (float32 for a whole training set at once).
    ``rank`` r > 0 (below the C classes): G is replaced by its projection G_r onto its top-r left
    singular directions (from the C × C matrix G Gᵀ), still divided by the exact ‖G‖, so each c_i
    moves by at most ‖G − G_r‖ / ‖G‖ = √(1 − the energy the r directions keep) (Cauchy–Schwarz),
    and the B·C·H product becomes B·(C + H)·r."""
    delta, h = delta.to(dtype), h.to(dtype).flatten(1)
    g_w, g_b = g_w.to(dtype), g_b.to(dtype)
    if 0 < rank < g_w.shape[0]:
        g = torch.cat([g_w, g_b[:, None]], 1)
        _, u = torch.linalg.eigh(g @ g.T)  # eigenvalues ascending: the last r columns are the top directions
        u = u[:, -rank:]
        p = u.T @ g  # (r, H + 1): G_r = u p
        dot = torch.linalg.vecdot(delta @ u, h @ p[:, :-1].T + p[:, -1])
    else:
        # row-wise dots and norms as single reductions: no (B, H) temporary besides delta @ g_w
        dot = torch.linalg.vecdot(delta @ g_w, h) + delta @ g_b
    norm_i = torch.linalg.vector_norm(delta, dim=1) * torch.sqrt(torch.linalg.vecdot(h, h) + 1.0)
    norm_g = torch.sqrt(torch.linalg.vecdot(g_w.flatten(), g_w.flatten()) + torch.linalg.vecdot(g_b, g_b))
    return torch.where(norm_i > 0, -dot / (norm_i * norm_g + 1e-30), torch.zeros_like(dot))
