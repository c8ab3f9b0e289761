"""Weights-only policy export and loading for transfer.

A trained SB3 policy is exported as ``policy.pt`` (a plain state dict of the actor, loadable with
``torch.load(..., weights_only=True)``) plus ``policy.json`` (what the policy needs: feature set,
action mapping, temperature range, network shape, algorithm, versions). The same JSON is also
written into SB3's ``policy.zip`` as ``rltemp.json``, so the zip can be used for transfer too: only
its ``policy.pth`` tensors are read, weights-only; its pickled ``data`` entries are never loaded.

The actor is rebuilt from the JSON as ``Linear/act`` layers and a final ``Linear``: PPO/A2C's
deterministic action is the Gaussian mean clipped to [-1, 1]; SAC's is ``tanh`` of its mean.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rltemp.errors import RltempError
from rltemp.paths import atomic_write_bytes

FORMAT = "rltemp-policy/1"


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


def export_policy(model: Any, meta: dict[str, Any], out_dir: Path) -> None:
    """Write ``policy.pt``, ``policy.json`` and ``policy.zip`` (SB3, with ``rltemp.json`` inside)."""
    import io

    state = actor_state_from_sb3(model.policy.state_dict(), meta["algo"], len(meta["net_arch"]))
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in state.items()}, buf)
    atomic_write_bytes(out_dir / "policy.pt", buf.getvalue())
    text = json.dumps({"format": FORMAT, **meta}, indent=2) + "\n"
    atomic_write_bytes(out_dir / "policy.json", text.encode())
    tmp = out_dir / ".tmp-policy.zip"
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as z:
        z.writestr("rltemp.json", text)
    tmp.replace(out_dir / "policy.zip")


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
    from rltemp.envs.features import FEATURES

    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "policy.json"
    if not p.exists():
        raise RltempError(f"policy {str(path)!r} not found (give a train-policy run folder, policy.json or policy.zip)")
    if p.suffix == ".zip":
        try:
            with zipfile.ZipFile(p) as z:
                meta = _read_meta(z.read("rltemp.json").decode(), f"{p}:rltemp.json")
                import io

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
