"""Trained temperature policies at distill time: weights-only loading and ``policy:``.

Plain torch (no gymnasium, no stable-baselines3), so a policy transfers to any run.

A policy has a *schedule head* (:mod:`rltemp.kd.forms`: one decision per run, made from a probe of
the student) and optionally a per-instance *modulator*. The temperature of instance i is
``T_i = clip(T_sched · m_i, t_min, t_max)``, m_i = 1 without a modulator. Both heads are small MLPs
(``Linear``/activation layers and a final ``Linear``); the deterministic action is the Gaussian
mean clipped to [-1, 1], as SB3's PPO / A2C act deterministically.

**Format** ``rltemp-policy/2``: ``policy.pt`` (a plain state dict, keys ``schedule.*`` and
``modulator.*``, loaded with ``weights_only=True``) + ``policy.json`` (the heads, see
:class:`~rltemp.kd.forms.Head`; temperature range, how it was trained, a behaviour fingerprint,
versions). Nothing is unpickled. ``policy:NAME`` also finds the shipped policies in
``agents/pretrained/NAME/``.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rltemp.errors import ConfigError, RltempError
from rltemp.kd.features import FEATURES, GLOBAL_FEATURES, FeatureInput, GlobalState, compute_features, global_features
from rltemp.kd.forms import Form, Head, Modulator, schedule_form
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, bind_args

FORMAT = "rltemp-policy/2"
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}


class ActorNet(nn.Module):
    """Plain-torch actor: rows (N, F) -> deterministic actions (N, A) in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, net_arch: list[int], activation: str) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise RltempError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")
        layers: list[nn.Module] = []
        d = obs_dim
        for w in net_arch:
            layers += [nn.Linear(d, w), ACTIVATIONS[activation]()]
            d = w
        with warnings.catch_warnings():  # a constant head (obs_dim 0) has an empty weight; its bias is loaded
            warnings.filterwarnings("ignore", "Initializing zero-element tensors")
            layers.append(nn.Linear(d, action_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).clamp(-1.0, 1.0)


def actor_state_from_sb3(state: dict[str, torch.Tensor], n_hidden: int) -> dict[str, torch.Tensor]:
    """Map an SB3 ``MlpPolicy`` (PPO / A2C) state dict onto :class:`ActorNet`'s keys (pure renaming)."""
    out = {}
    try:
        for i in range(n_hidden):
            for p in ("weight", "bias"):
                out[f"net.{2 * i}.{p}"] = state[f"mlp_extractor.policy_net.{2 * i}.{p}"]
        for p in ("weight", "bias"):
            out[f"net.{2 * n_hidden}.{p}"] = state[f"action_net.{p}"]
    except KeyError as e:
        raise RltempError(f"policy weights lack {e.args[0]!r}: not an rltemp actor-critic policy") from None
    return out


class TemperaturePolicy(nn.Module):
    """A loaded policy: the schedule head (its form decides when and how) and an optional modulator."""

    def __init__(self, meta: dict[str, Any], where: str = "policy") -> None:
        super().__init__()
        self.meta = meta
        self.t_min, self.t_max = float(meta["t_min"]), float(meta["t_max"])
        if not (0 < self.t_min < self.t_max and math.isfinite(self.t_max)):
            raise RltempError(f"{where}: t_min / t_max must satisfy 0 < t_min < t_max, got {meta['t_min']}, "
                              f"{meta['t_max']}")
        head = Head.from_dict(meta.get("schedule"), f"{where}: schedule")
        self.form: Form = schedule_form(head, self.t_min, self.t_max, where)
        self.schedule = ActorNet(self.form.obs_dim, self.form.outputs, head.net_arch, head.activation)
        self.modulator_form: Modulator | None = None
        self.modulator: ActorNet | None = None
        if meta.get("modulator"):
            mod = Head.from_dict(meta["modulator"], f"{where}: modulator")
            self.modulator_form = Modulator(mod, self.t_min, self.t_max)
            self.modulator = ActorNet(len(mod.features), 1, mod.net_arch, mod.activation)
        for p in self.parameters():
            p.requires_grad_(False)

    @property
    def schedule_features(self) -> list[str]:
        return self.form.features

    @property
    def instance_features(self) -> list[str]:
        return self.modulator_form.features if self.modulator_form is not None else []

    def observation(self, state: GlobalState) -> dict[str, float]:
        """What the schedule head reads in ``state``, by feature name (and, for a head with a training
        support, ``in_support``: 1 or 0)."""
        obs = global_features(self.form.features, state)
        out = dict(zip(self.form.features, obs.tolist(), strict=True))
        if self.form.head.support is not None:
            out["in_support"] = float(self.form.head.support.covers(obs))
        return out

    @torch.no_grad()
    def act(self, state: GlobalState) -> torch.Tensor:
        """The schedule head's decision (outputs,) on the CPU, from ``state`` (the epoch's start, or a
        probe's); outside the head's training support, the decision that runs at its fallback temperature."""
        return self.decision(global_features(self.form.features, state))

    def decision(self, obs: torch.Tensor) -> torch.Tensor:
        """The decision (outputs,) for the features ``obs`` (F,): the network's, or outside the head's
        training support, the one that runs every epoch at the support's fallback temperature."""
        support = self.form.head.support
        if support is not None and not support.covers(obs):
            return self.form.constant(support.fallback)
        return self.head_action(obs)

    @torch.no_grad()
    def head_action(self, obs: torch.Tensor) -> torch.Tensor:
        """The schedule network's own decision (outputs,) for the features ``obs`` (F,), unguarded."""
        return self.schedule(obs[None].to(next(self.schedule.parameters()).device))[0].cpu()

    def constant_action(self) -> torch.Tensor:
        """The decision of a constant schedule (a head that reads no features): its bias."""
        return self.head_action(torch.zeros(0))

    def decide(self, distiller: Any,
               initial: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, GlobalState | None]:
        """Probe ``distiller``'s student as the form says (:meth:`~rltemp.kd.trainer.Distiller.probe`,
        from the weights ``initial`` if given) and decide: the action and the probed state (None for a
        constant schedule, which has no probe)."""
        probe = self.form.probe
        if probe is None:
            return self.constant_action(), None
        state = distiller.probe(probe.epochs, probe.temperature, initial=initial)
        return self.act(state), state

    @torch.no_grad()
    def temperatures(self, t_sched: float, inp: FeatureInput) -> torch.Tensor:
        """Per-instance temperatures (B,) for one batch under the schedule temperature ``t_sched``."""
        if self.modulator is None:
            return torch.full((len(inp.labels),), t_sched, device=inp.labels.device)
        obs = compute_features(self.instance_features, inp)
        b = self.modulator(obs.to(next(self.modulator.parameters()).device))[:, 0]
        return self.modulator_form.temperatures(t_sched, b).to(inp.labels.device)


def pretrained_roots() -> list[Path]:
    """Where ``policy:NAME`` looks for shipped policies: ``./agents/pretrained`` and the source tree's."""
    roots = [Path.cwd() / "agents" / "pretrained", Path(__file__).resolve().parents[2] / "agents" / "pretrained"]
    return list(dict.fromkeys(roots))


def shipped_policies() -> list[str]:
    """The names ``policy:NAME`` finds in :func:`pretrained_roots` (folders holding a ``policy.json``)."""
    roots = [r for r in pretrained_roots() if r.is_dir()]
    return sorted({d.name for r in roots for d in r.iterdir() if (d / "policy.json").exists()})


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
    raise RltempError(f"policy {str(path)!r} not found: give a train-policy run folder, a policy.json, or the name "
                      f"of a shipped policy ({', '.join(shipped_policies()) or 'none found'})")


def read_policy_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``policy.json``'s path and content, checked to be an rltemp policy (one-line errors)."""
    json_path = resolve_policy(path)
    try:
        meta = json.loads(json_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise RltempError(f"{json_path}: not a policy.json (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise RltempError(f"{json_path}: not valid JSON ({e.msg})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RltempError(f"{json_path}: not an rltemp policy of format {FORMAT!r} (found {found!r}); "
                          "policies from older rltemp versions must be retrained")
    return json_path, meta


def load_policy(path: str | Path) -> TemperaturePolicy:
    """Load a policy weights-only (``policy.pt`` + ``policy.json``); mismatches fail with one line."""
    json_path, meta = read_policy_meta(path)
    for name in ("t_min", "t_max"):
        if not isinstance(meta.get(name), (int, float)) or isinstance(meta.get(name), bool):
            raise RltempError(f"{json_path}: {name} must be a number, got {meta.get(name)!r}")
    policy = TemperaturePolicy(meta, str(json_path))
    heads = [("schedule", policy.schedule_features, GLOBAL_FEATURES), ("modulator", policy.instance_features, FEATURES)]
    for name, features, registry in heads:
        unknown = [f for f in features if f not in registry]
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
    try:
        policy.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as e:
        first = str(e).splitlines()[0]
        raise RltempError(f"policy {json_path} does not match its description: {first}") from None
    return policy.eval()


def load_schedule_base(path: str | Path, field: str = "env.base_policy") -> TemperaturePolicy:
    """A policy whose schedule a modulator runs on: its schedule alone is used."""
    try:
        return load_policy(path)
    except RltempError as e:
        raise ConfigError(f"{field}: {e}") from None


class PolicyStrategy(TemperatureStrategy):
    """``policy:PATH`` — a trained policy, frozen and deterministic (transfer: no RL at distill time).

    At the run's first step the schedule probes the student's initial weights
    (:meth:`~rltemp.kd.trainer.Distiller.probe`) and decides the whole schedule from the probe's
    state — exactly what the environment observes; every epoch then runs at the schedule's
    temperature for its progress. Each step, the modulator (if any) reads the batch's features from
    the logits the step already has. The decision is kept in the buffer ``run_decision``, so a resumed
    run goes on with it without probing again. Works for any architecture, seed, dataset or batch size.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.policy = load_policy(path)
        self.per_instance = self.policy.modulator is not None
        self._distiller: Any = None
        self.t_sched = math.nan
        self._progress = 0.0
        self._due = True
        self._observed: dict[str, float] | None = None
        self.register_buffer("run_decision", torch.full((self.policy.form.outputs,), math.nan))  # NaN until decided

    def attach(self, distiller: Any) -> None:
        self._distiller = distiller
        self._initial = {k: v.detach().clone() for k, v in distiller.student.state_dict().items()}  # for the probe

    def parameters(self, recurse: bool = True):  # noqa: ANN201 - frozen: nothing for the optimiser
        return iter(())

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        d = self._distiller
        self._progress = d.progress if d is not None else epoch / num_epochs
        self._due = True

    def _decide(self) -> None:
        if bool(torch.isnan(self.run_decision).any()):  # a fresh run: decide now, from a probe of the student
            if self._distiller is None:
                raise RltempError("the policy has not decided a temperature: attach it to a Distiller first")
            action, probed = self.policy.decide(self._distiller, self._initial)
            self.run_decision.copy_(action)
            self._observed = self.policy.observation(probed) if probed is not None else None
        self.t_sched = self.policy.form.temperature(self.run_decision, self._progress)
        self._due = False

    def schedule_temperature(self) -> float | None:
        return self.t_sched

    def observed(self) -> dict[str, float] | None:
        out, self._observed = self._observed, None
        return out

    @torch.no_grad()
    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        if self._due:
            self._decide()
        if self.policy.modulator is None:
            return torch.full((student_logits.shape[0],), self.t_sched, device=student_logits.device)
        self.last_input = FeatureInput(student_logits.detach(), teacher_logits.detach(), labels)
        return self.policy.temperatures(self.t_sched, self.last_input)


@STRATEGIES.register("policy")
def _policy(args: list[str], kwargs: dict[str, str], ctx: StrategyContext) -> TemperatureStrategy:
    p = bind_args("policy", args, kwargs, {"path": ""})
    if not p["path"]:
        raise ConfigError("temperature SPEC 'policy' needs a path: policy:RUN_DIR, policy:FILE.json or "
                          "policy:NAME (a shipped policy in agents/pretrained/)")
    return PolicyStrategy(p["path"])
