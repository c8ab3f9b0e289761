"""Model registry and weights-only checkpoints.

A builder takes ``(input_shape, num_classes, **options)`` and returns an ``nn.Module`` whose forward
returns logits ``(B, num_classes)``. Unknown options fail naming the valid ones.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rltemp.errors import ConfigError, RltempError, did_you_mean
from rltemp.paths import atomic_write_bytes
from rltemp.registry import Registry

Builder = Callable[..., nn.Module]
MODELS: Registry[Builder] = Registry("model")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                options: dict[str, Any] | None = None) -> nn.Module:
    builder = MODELS.get(name)
    options = dict(options or {})
    params = inspect.signature(builder).parameters
    valid = [p for p in params if p not in ("input_shape", "num_classes")]
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"unknown option {key!r} for model {name!r}{did_you_mean(key, valid)}; "
                f"valid: {', '.join(valid) or '(none)'}"
            )
    return builder(input_shape=tuple(input_shape), num_classes=num_classes, **options)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Save ``{"model": state_dict, **meta}`` (the published KD-zoo layout) atomically.

    ``meta`` holds only plain values (str, int, float, lists, dicts) so the file loads weights-only.
    """
    import io

    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), **meta}, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint weights-only (``torch.load(..., weights_only=True)``): no code runs."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise RltempError(f"checkpoint {str(p)!r} does not exist")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        raise RltempError(f"{p}: cannot be loaded weights-only ({first})") from None
    if isinstance(ckpt, dict) and "model" in ckpt and isinstance(ckpt["model"], dict):
        return ckpt
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return {"model": ckpt}  # a bare state dict
    raise RltempError(f"{p}: expected a dict with a 'model' state dict or a bare state dict")


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load; a mismatch names the first differing keys and shapes."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:2]}")
        raise RltempError(f"{source} does not match {model.__class__.__name__}: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------- small families


def _flat_dim(shape: tuple[int, ...]) -> int:
    return int(math.prod(shape))


class MLP(nn.Module):
    """Flatten -> depth x [Linear(width), ReLU] -> Linear(num_classes)."""

    def __init__(self, in_dim: int, num_classes: int, width: int, depth: int, dropout: float = 0.0) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = width
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def positive_ints(model: str, **values: Any) -> None:
    """Model options that must be integers >= 1 (a zero-width model would train at chance to the end)."""
    for key, v in values.items():
        items = v if isinstance(v, list) else [v]
        if not items or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in items):
            raise ConfigError(f"{model}: option {key} must be {'a list of ' if isinstance(v, list) else ''}"
                              f"integer(s) >= 1, got {v!r}")


def check_dropout(model: str, dropout: Any) -> None:
    if not (isinstance(dropout, (int, float)) and 0.0 <= dropout < 1.0):
        raise ConfigError(f"{model}: option dropout must be in [0, 1), got {dropout!r}")


@MODELS.register("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, width: int = 256, depth: int = 2,
        dropout: float = 0.0) -> nn.Module:
    """Multilayer perceptron for any input shape (flattened)."""
    positive_ints("mlp", width=width)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise ConfigError(f"mlp: option depth must be an integer >= 0 (hidden layers), got {depth!r}")
    check_dropout("mlp", dropout)
    return MLP(_flat_dim(input_shape), num_classes, width, depth, dropout)


class CNN1d(nn.Module):
    """depth x [Conv1d(k, channels), BN, ReLU] with stride 2 after the first, global average pool, Linear."""

    def __init__(self, in_ch: int, num_classes: int, channels: int, depth: int, kernel: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for i in range(depth):
            layers += [
                nn.Conv1d(c, channels, kernel, stride=1 if i == 0 else 2, padding=kernel // 2, bias=False),
                nn.BatchNorm1d(channels),
                nn.ReLU(),
            ]
            c = channels
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        return self.head(self.features(x).mean(-1))


@MODELS.register("cnn1d")
def cnn1d(input_shape: tuple[int, ...], num_classes: int, channels: int = 64, depth: int = 3,
          kernel: int = 5) -> nn.Module:
    """1-D CNN for signals of shape (L,) or (C, L), e.g. mnist1d."""
    positive_ints("cnn1d", channels=channels, depth=depth, kernel=kernel)
    in_ch = 1 if len(input_shape) == 1 else input_shape[0]
    return CNN1d(in_ch, num_classes, channels, depth, kernel)


class CNN2d(nn.Module):
    """Stages of [Conv3x3, BN, ReLU] x convs_per_stage, max-pool between stages, global pool, Linear."""

    def __init__(self, in_ch: int, num_classes: int, channels: list[int], convs_per_stage: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_ch
        for s, width in enumerate(channels):
            if s > 0:
                layers.append(nn.MaxPool2d(2))
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
                c = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.unsqueeze(1)
        return self.head(self.features(x).mean((-2, -1)))


@MODELS.register("cnn2d")
def cnn2d(
    input_shape: tuple[int, ...], num_classes: int, channels: list[int] | None = None, convs_per_stage: int = 1
) -> nn.Module:
    """2-D CNN for images of shape (H, W) or (C, H, W), e.g. digits, glyphs."""
    positive_ints("cnn2d", channels=list(channels) if channels is not None else [32], convs_per_stage=convs_per_stage)
    in_ch = 1 if len(input_shape) == 2 else input_shape[0]
    return CNN2d(in_ch, num_classes, list(channels or [32, 64, 128]), convs_per_stage)
