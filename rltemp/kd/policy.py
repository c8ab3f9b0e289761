"""Trained temperature policies at distill time: weights-only loading and the ``policy:PATH`` strategy.

This module is plain torch (no gymnasium, no stable-baselines3), so a policy transfers to any run.

Format ``rltemp-policy/1``: ``policy.pt`` (a state dict of :class:`PolicyNet`) + ``policy.json``
(features, action mapping, temperature range, network, algorithm, versions), or an SB3
``policy.zip`` written by rltemp (``rltemp.json`` inside; only its ``policy.pth`` tensors are read,
weights-only). The actor is rebuilt from the JSON as ``Linear/act`` layers and a final ``Linear``:
PPO/A2C's deterministic action is the Gaussian mean clipped to [-1, 1]; SAC's is ``tanh`` of its mean.

``policy:PATH`` computes the policy's own feature set from the logits the training step already has
and the Distiller's global state (progress, last validation accuracy, recent loss), exactly as the
environment does, runs the actor row by row, and maps actions to temperatures with the policy's
recorded range. It works for any student architecture, seed, dataset or batch size, because the
features do not depend on them.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rltemp.errors import ConfigError, RltempError
from rltemp.kd.features import FEATURES, FeatureInput, compute_features
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, bind_args

FORMAT = "rltemp-policy/1"


def action_to_temperature(action: torch.Tensor, t_min: float, t_max: float) -> torch.Tensor:
    """Map actions in [-1, 1] to [t_min, t_max] on a log scale (clipping out-of-range values):
    T = exp(log t_min + (a + 1) / 2 * (log t_max - log t_min))."""
    a = action.clamp(-1.0, 1.0)
    lo, hi = math.log(t_min), math.log(t_max)
    return torch.exp(lo + (a + 1) / 2 * (hi - lo))


def temperature_to_action(t: float, t_min: float, t_max: float) -> float:
    """Inverse of :func:`action_to_temperature` (for constant-T agents)."""
    lo, hi = math.log(t_min), math.log(t_max)
    return 2 * (math.log(t) - lo) / (hi - lo) - 1


class PolicyNet(nn.Module):
    """Plain-torch actor: obs rows (N, F) -> deterministic actions (N, A) in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, net_arch: list[int], activation: str, squash: bool) -> None:
        super().__init__()
        act = {"tanh": nn.Tanh, "relu": nn.ReLU}[activation]
        layers: list[nn.Module] = []
        d = obs_dim
        for w in net_arch:
            layers += [nn.Linear(d, w), act()]
            d = w
        layers.append(nn.Linear(d, action_dim))
        self.net = nn.Sequential(*layers)
        self.squash = squash

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.net(obs)
        return torch.tanh(a) if self.squash else a.clamp(-1.0, 1.0)


def actor_state_from_sb3(state: dict[str, torch.Tensor], algo: str, n_hidden: int) -> dict[str, torch.Tensor]:
    """Map an SB3 policy state dict onto :class:`PolicyNet`'s keys."""
    if algo == "sac":
        hidden, head = "actor.latent_pi", "actor.mu"
    else:
        hidden, head = "mlp_extractor.policy_net", "action_net"
    out = {}
    try:
        for i in range(n_hidden):
            for p in ("weight", "bias"):
                out[f"net.{2 * i}.{p}"] = state[f"{hidden}.{2 * i}.{p}"]
        for p in ("weight", "bias"):
            out[f"net.{2 * n_hidden}.{p}"] = state[f"{head}.{p}"]
    except KeyError as e:
        raise RltempError(f"policy weights lack {e.args[0]!r}: not an rltemp {algo} policy") from None
    return out


def _read_meta(text: str, source: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        raise RltempError(f"{source}: not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RltempError(f"{source}: not an rltemp policy description (format {FORMAT!r} expected)")
    return meta


def load_policy(path: str | Path) -> tuple[PolicyNet, dict[str, Any]]:
    """Load a policy from a run folder, ``policy.json``/``policy.pt`` or ``policy.zip``, weights-only."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "policy.json"
    if not p.exists():
        raise RltempError(f"policy {str(path)!r} not found (give a train-policy run folder, policy.json or policy.zip)")
    if p.suffix == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                meta = _read_meta(z.read("rltemp.json").decode(), f"{p}:rltemp.json")
                sb3_state = torch.load(io.BytesIO(z.read("policy.pth")), map_location="cpu", weights_only=True)
        except KeyError as e:
            raise RltempError(f"{p}: missing {e.args[0]} (not a policy.zip written by rltemp)") from None
        except (zipfile.BadZipFile, RuntimeError, ValueError) as e:
            raise RltempError(f"{p}: cannot be read weights-only ({str(e).splitlines()[0]})") from None
        state = actor_state_from_sb3(sb3_state, meta["algo"], len(meta["net_arch"]))
    else:
        json_path = p.with_suffix(".json")
        meta = _read_meta(json_path.read_text(), str(json_path)) if json_path.exists() else None
        if meta is None:
            raise RltempError(f"{json_path} not found beside {p}")
        pt = p.with_suffix(".pt")
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise RltempError(f"{pt} not found beside {json_path}") from None
        except Exception as e:  # noqa: BLE001
            raise RltempError(f"{pt}: cannot be loaded weights-only ({str(e).splitlines()[0]})") from None
    unknown = [f for f in meta.get("features", []) if f not in FEATURES]
    if unknown:
        raise RltempError(f"policy {p} was trained on features this rltemp does not have: {', '.join(unknown)}")
    net = PolicyNet(len(meta["features"]), 2 if meta["pair"] else 1, meta["net_arch"], meta["activation"],
                    squash=meta["algo"] == "sac")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RltempError(f"policy {p} does not match its description ({len(meta['features'])} features, "
                          f"net {meta['net_arch']}): {first}") from None
    return net.eval(), meta


class PolicyStrategy(TemperatureStrategy):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.net, self.meta = load_policy(path)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.features = list(self.meta["features"])
        self._distiller: Any = None

    def attach(self, distiller: Any) -> None:
        self._distiller = distiller

    def parameters(self, recurse: bool = True):  # noqa: ANN201 - frozen: nothing for the optimiser
        return iter(())

    @torch.no_grad()
    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        d = self._distiller
        inp = FeatureInput(student_logits.detach(), teacher_logits.detach(), labels, progress,
                           d.last_val_acc if d is not None else 0.0, d.loss_ema if d is not None else 0.0)
        obs = compute_features(self.features, inp)
        a = self.net(obs)
        t = action_to_temperature(a, float(self.meta["t_min"]), float(self.meta["t_max"]))
        return t if self.meta["pair"] else t[:, 0]


@STRATEGIES.register("policy")
def _policy(args: list[str], kwargs: dict[str, str], ctx: StrategyContext) -> TemperatureStrategy:
    p = bind_args("policy", args, kwargs, {"path": ""})
    if not p["path"]:
        raise ConfigError("temperature SPEC 'policy' needs a path: policy:RUN_DIR (or policy.json / policy.zip)")
    return PolicyStrategy(p["path"])
