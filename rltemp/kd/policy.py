"""Trained temperature policies at distill time: the policy form, weights-only loading, ``policy:``.

This module is plain torch (no gymnasium, no stable-baselines3), so a policy transfers to any run.

**The policy form.** A policy factorises the temperature of instance i at step t as

    T_i(t) = clip( T_sched(g_e) · m_i ,  t_min, t_max )

- ``T_sched(g_e)``: the *schedule head*, one temperature per decision (an epoch), from the global
  state g_e at the start of that epoch (:class:`~rltemp.kd.features.GlobalState`: progress, last
  validation accuracy, recent loss); its action a ∈ [-1, 1] maps on a log scale,
  T = exp(log t_min + (a + 1) / 2 · (log t_max − log t_min)).
- ``m_i``: the optional *modulator*, per instance, from the instance's features f_i (teacher and
  student probabilities, margin, ...): log m_i = μ · (b_i − mean_batch b), b_i ∈ [-1, 1] the
  modulator's action and μ = log(max_multiplier). Centring in log space keeps T_sched the geometric
  mean temperature of every batch, so the two heads do not compete for the same thing.

Both heads are small MLPs (``Linear``/activation layers and a final ``Linear``). PPO/A2C's
deterministic action is the Gaussian mean clipped to [-1, 1] (``tanh`` of it when the head was
trained with a bounded mean, ``"tanh_mean": true``); SAC's is ``tanh`` of its mean. The
schedule head is trained by RL with episode-level credit, the modulator with per-instance credit
(:mod:`rltemp.agents.train`).

**Format** ``rltemp-policy/2``: ``policy.pt`` (a plain state dict, keys ``schedule.*`` and
``modulator.*``, loaded with ``weights_only=True``) + ``policy.json`` (feature sets, temperature
range, networks, algorithm, how it was trained, a behaviour fingerprint, versions). Nothing is
unpickled. ``policy:NAME`` also finds the shipped policies in ``agents/pretrained/NAME/``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rltemp.errors import ConfigError, RltempError
from rltemp.kd.features import (
    FEATURES,
    GLOBAL_FEATURES,
    FeatureInput,
    GlobalState,
    compute_features,
    global_features,
)
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, bind_args

FORMAT = "rltemp-policy/2"
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


def action_to_temperature(action: torch.Tensor, t_min: float, t_max: float) -> torch.Tensor:
    """Map actions in [-1, 1] to [t_min, t_max] on a log scale (clipping out-of-range values):
    T = exp(log t_min + (a + 1) / 2 · (log t_max − log t_min))."""
    a = action.clamp(-1.0, 1.0)
    lo, hi = math.log(t_min), math.log(t_max)
    return torch.exp(lo + (a + 1) / 2 * (hi - lo))


def temperature_to_action(t: float, t_min: float, t_max: float) -> float:
    """Inverse of :func:`action_to_temperature` (for constant-T agents)."""
    lo, hi = math.log(t_min), math.log(t_max)
    return 2 * (math.log(t) - lo) / (hi - lo) - 1


def centred_log_multiplier(b: torch.Tensor, max_multiplier: float) -> torch.Tensor:
    """log m_i = log(max_multiplier) · (b_i − mean b), b clipped to [-1, 1] (the modulator's map)."""
    b = b.clamp(-1.0, 1.0)
    return math.log(max_multiplier) * (b - b.mean())


class ActorNet(nn.Module):
    """Plain-torch actor: rows (N, F) -> deterministic actions (N, A) in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, net_arch: list[int], activation: str, squash: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = obs_dim
        for w in net_arch:
            layers += [nn.Linear(d, w), ACTIVATIONS[activation]()]
            d = w
        layers.append(nn.Linear(d, action_dim))
        self.net = nn.Sequential(*layers)
        self.squash = squash

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        a = self.net(obs)
        return torch.tanh(a) if self.squash else a.clamp(-1.0, 1.0)


def actor_state_from_sb3(state: dict[str, torch.Tensor], algo: str, n_hidden: int) -> dict[str, torch.Tensor]:
    """Map an SB3 ``MlpPolicy`` state dict onto :class:`ActorNet`'s keys (pure tensor renaming)."""
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


def head_net(head: dict[str, Any], obs_dim: int) -> ActorNet:
    squash = head["algo"] == "sac" or bool(head.get("tanh_mean"))  # SAC's and a tanh-bounded mean's
    return ActorNet(obs_dim, 1, list(head["net_arch"]), head["activation"], squash=squash)


class TemperaturePolicy(nn.Module):
    """A loaded policy: the schedule head and, optionally, the per-instance modulator (see module doc)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__()
        self.meta = meta
        sched = meta["schedule"]
        self.schedule_features: list[str] = list(sched["features"])
        self.t_min, self.t_max = float(meta["t_min"]), float(meta["t_max"])
        self.schedule = head_net(sched, len(self.schedule_features))
        mod = meta.get("modulator")
        self.instance_features: list[str] = list(mod["features"]) if mod else []
        self.max_multiplier = float(mod["max_multiplier"]) if mod else 1.0
        self.modulator = head_net(mod, len(self.instance_features)) if mod else None
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def schedule_temperature(self, state: GlobalState) -> float:
        obs = global_features(self.schedule_features, state)[None]
        a = self.schedule(obs.to(next(self.schedule.parameters()).device))[0, 0]
        return float(action_to_temperature(a, self.t_min, self.t_max))

    @torch.no_grad()
    def temperatures(self, t_sched: float, inp: FeatureInput) -> torch.Tensor:
        """Per-instance temperatures (B,) for one batch under the schedule temperature ``t_sched``."""
        b = len(inp.labels)
        if self.modulator is None:
            return torch.full((b,), t_sched, device=inp.labels.device)
        obs = compute_features(self.instance_features, inp)
        logm = centred_log_multiplier(self.modulator(obs.to(next(self.modulator.parameters()).device))[:, 0],
                                      self.max_multiplier)
        return (t_sched * torch.exp(logm)).clamp(self.t_min, self.t_max).to(inp.labels.device)


def describe_head(algo: str, features: list[str], net_arch: list[int], activation: str, **extra: Any) -> dict[str, Any]:
    return {"algo": algo, "features": list(features), "net_arch": list(net_arch), "activation": activation, **extra}


def pretrained_roots() -> list[Path]:
    """Where ``policy:NAME`` looks for shipped policies: ``./agents/pretrained`` and the source tree's."""
    roots = [Path.cwd() / "agents" / "pretrained", Path(__file__).resolve().parents[2] / "agents" / "pretrained"]
    return list(dict.fromkeys(roots))


def resolve_policy(path: str | Path) -> Path:
    """A policy's ``policy.json``: from a run folder, the file itself, or a shipped policy's name."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "policy.json"
    if p.exists():
        return p
    if "/" not in str(path) and p.suffix == "":
        for root in pretrained_roots():
            if (root / str(path) / "policy.json").exists():
                return root / str(path) / "policy.json"
    shipped = sorted({d.name for r in pretrained_roots() if r.is_dir() for d in r.iterdir() if (d / "policy.json").exists()})
    raise RltempError(f"policy {str(path)!r} not found: give a train-policy run folder, a policy.json, or the name "
                      f"of a shipped policy ({', '.join(shipped) or 'none found'})")


def load_policy(path: str | Path) -> TemperaturePolicy:
    """Load a policy weights-only (``policy.pt`` + ``policy.json``); mismatches fail with one line."""
    json_path = resolve_policy(path)
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as e:
        raise RltempError(f"{json_path}: not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RltempError(f"{json_path}: not an rltemp policy of format {FORMAT!r} (found {found!r}); "
                          "policies from older rltemp versions must be retrained")
    heads = [("schedule", meta.get("schedule"), GLOBAL_FEATURES)]
    if meta.get("modulator"):
        heads.append(("modulator", meta["modulator"], FEATURES))
    for name, head, registry in heads:
        if not isinstance(head, dict) or not head.get("features"):
            raise RltempError(f"{json_path}: the {name} head has no feature list")
        unknown = [f for f in head["features"] if f not in registry]
        if unknown:
            raise RltempError(f"policy {json_path} was trained on {name} features this rltemp does not have: "
                              f"{', '.join(unknown)}")
    pt = json_path.with_name("policy.pt")
    try:
        state = torch.load(pt, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise RltempError(f"{pt} not found beside {json_path}") from None
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise RltempError(f"{pt}: cannot be loaded weights-only ({str(e).splitlines()[0]})") from None
    policy = TemperaturePolicy(meta)
    try:
        policy.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise RltempError(f"policy {json_path} does not match its description: {first}") from None
    return policy.eval()


class PolicyStrategy(TemperatureStrategy):
    """``policy:PATH`` — a trained policy, frozen and deterministic (transfer: no RL at distill time).

    At the start of each epoch the schedule head reads the Distiller's global state (exactly what
    the environment observes); each step, the modulator (if any) reads the batch's features from
    the logits the step already has. Works for any architecture, seed, dataset or batch size.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.policy = load_policy(path)
        self.per_instance = self.policy.modulator is not None
        self._distiller: Any = None
        self.t_sched = 0.0

    def attach(self, distiller: Any) -> None:
        self._distiller = distiller

    def parameters(self, recurse: bool = True):  # noqa: ANN201 - frozen: nothing for the optimiser
        return iter(())

    def _state(self, progress: float) -> GlobalState:
        d = self._distiller
        return GlobalState(progress, d.last_val_acc if d is not None else 0.0, d.loss_ema if d is not None else 0.0)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        d = self._distiller
        self.t_sched = self.policy.schedule_temperature(self._state(d.progress if d is not None else epoch / num_epochs))

    @torch.no_grad()
    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        if self.policy.modulator is None:
            return torch.full((student_logits.shape[0],), self.t_sched, device=student_logits.device)
        s = self._state(progress)
        inp = FeatureInput(student_logits.detach(), teacher_logits.detach(), labels, s.progress, s.last_val_acc,
                           s.loss_ema)
        return self.policy.temperatures(self.t_sched, inp)

    def scalars(self) -> dict[str, float]:
        return {"policy/schedule_temperature": self.t_sched}


@STRATEGIES.register("policy")
def _policy(args: list[str], kwargs: dict[str, str], ctx: StrategyContext) -> TemperatureStrategy:
    p = bind_args("policy", args, kwargs, {"path": ""})
    if not p["path"]:
        raise ConfigError("temperature SPEC 'policy' needs a path: policy:RUN_DIR, policy:FILE.json or "
                          "policy:NAME (a shipped policy in agents/pretrained/)")
    return PolicyStrategy(p["path"])
