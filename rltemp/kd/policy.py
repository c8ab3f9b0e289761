"""Trained temperature policies at distill time: the policy form, weights-only loading, ``policy:``.

This module is plain torch (no gymnasium, no stable-baselines3), so a policy transfers to any run.

**The policy form.** A policy factorises the temperature of instance i at step t as

    T_i(t) = clip( T_sched(g_e) · m_i ,  t_min, t_max )

- ``T_sched(g_e)``: the *schedule head*, one temperature per decision (an epoch), from the global
  state g_e at the start of that epoch (:class:`~rltemp.kd.features.GlobalState`: progress, last
  validation accuracy, recent loss); its action a ∈ [-1, 1] maps on a log scale,
  T = exp(log t_min + (a + 1) / 2 · (log t_max − log t_min)).
  A *run-level* schedule head (``"decision": "run"``, :func:`run_temperature`) decides twice per
  run instead: before the first epoch its input is all zeros and its first output sets that epoch's
  temperature T_0; at the start of the second epoch it reads [1, features of the state then] (the
  first epoch's validation accuracy, ...) once and outputs (a_start, a_end), and every later epoch
  runs at the action interpolated linearly in progress p, a(p) = (1 − p) a_start + p a_end — a
  geometric schedule from T(a_start) toward T(a_end). One decision per student run is a contextual
  bandit; its credit is the whole run's gain, undiluted by thirty per-epoch decisions. With a fixed
  first temperature (``"first_temperature": T_0``) the head reads the features alone and decides once.
  With a probe (``"probe": {"epochs": e, "temperature": T_p}``) it also decides once, before the
  first epoch, from the features of a throwaway copy of the student distilled for e of an epoch at
  T_p (:meth:`~rltemp.kd.trainer.Distiller.probe`), and (a_start, a_end) sets every epoch, the first
  included: the policy sees how fast this student learns before it sets any temperature.
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


DECISIONS = ("epoch", "run")


def head_net(head: dict[str, Any], obs_dim: int) -> ActorNet:
    squash = head["algo"] == "sac" or bool(head.get("tanh_mean"))  # SAC's and a tanh-bounded mean's
    outputs = 2 if head.get("decision") == "run" else 1
    return ActorNet(obs_dim, outputs, list(head["net_arch"]), head["activation"], squash=squash)


def head_inputs(head: dict[str, Any]) -> int:
    """Width of a head's input: its features, plus the "decided" flag in front of a run-level head's
    (none when it decides once: its first temperature is fixed, ``"first_temperature"``, or it
    decides from a probe, ``"probe"``)."""
    once = head.get("first_temperature") or head.get("probe")
    return len(head["features"]) + (1 if head.get("decision") == "run" and not once else 0)


def run_action(actions: torch.Tensor, progress: float) -> torch.Tensor:
    """A run-level decision's action at ``progress``: (1 − p) a_start + p a_end, both clipped to
    [-1, 1] first (so T moves geometrically from T(a_start) at p = 0 toward T(a_end) at p = 1)."""
    a = torch.as_tensor(actions, dtype=torch.float32).reshape(2).clamp(-1.0, 1.0)
    p = min(max(float(progress), 0.0), 1.0)
    return ((1 - p) * a[0] + p * a[1]).reshape(1)


def run_temperature(actions: torch.Tensor, progress: float, t_min: float, t_max: float) -> float:
    """The temperature of a run-level decision (a_start, a_end) at ``progress`` (see the module doc)."""
    return float(action_to_temperature(run_action(actions, progress), t_min, t_max)[0])


class TemperaturePolicy(nn.Module):
    """A loaded policy: the schedule head and, optionally, the per-instance modulator (see module doc)."""

    def __init__(self, meta: dict[str, Any]) -> None:
        super().__init__()
        self.meta = meta
        sched = meta["schedule"]
        self.schedule_features: list[str] = list(sched["features"])
        self.decision: str = sched.get("decision", "epoch")
        self.t_min, self.t_max = float(meta["t_min"]), float(meta["t_max"])
        self.schedule = head_net(sched, head_inputs(sched))
        self._run_flag = head_inputs(sched) - len(self.schedule_features)  # run-level: the "decided" column, or none
        self._fixed_first = float(sched.get("first_temperature") or 0.0)  # run-level: a fixed first-epoch T
        probe = sched.get("probe")  # run-level: decide once, from a probe of the student
        self.probe: tuple[float, float] | None = (float(probe["epochs"]), float(probe["temperature"])) if probe else None
        mod = meta.get("modulator")
        self.instance_features: list[str] = list(mod["features"]) if mod else []
        self.max_multiplier = float(mod["max_multiplier"]) if mod else 1.0
        self.modulator = head_net(mod, len(self.instance_features)) if mod else None
        for p in self.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def schedule_temperature(self, state: GlobalState) -> float:
        """An epoch-level head's temperature for the epoch that starts in ``state``."""
        if self.decision != "epoch":
            raise RltempError("this policy decides once per run: use first_temperature() and run_actions()")
        obs = global_features(self.schedule_features, state)[None]
        a = self.schedule(obs.to(next(self.schedule.parameters()).device))[0, 0]
        return float(action_to_temperature(a, self.t_min, self.t_max))

    @torch.no_grad()
    def first_temperature(self) -> float:
        """A run-level head's temperature for the first epoch: fixed (``"first_temperature"``), or its
        first output on an all-zero input. (A head that decides from a probe has none of its own:
        its decision sets the first epoch too.)"""
        if self.probe:
            raise RltempError("this policy decides every epoch, the first included, from a probe of the student: "
                              "use run_actions(probe_state)")
        if self._fixed_first:
            return self._fixed_first
        obs = torch.zeros(1, self._run_flag + len(self.schedule_features), device=next(self.schedule.parameters()).device)
        return float(action_to_temperature(self.schedule(obs)[0, 0].cpu(), self.t_min, self.t_max))

    @torch.no_grad()
    def run_actions(self, state: GlobalState) -> torch.Tensor:
        """A run-level head's decision (a_start, a_end), (2,) on the CPU, from the state at the start
        of the second epoch, or the probe's state (see :func:`run_temperature`)."""
        obs = torch.cat([torch.ones(self._run_flag), global_features(self.schedule_features, state)])[None]
        return self.schedule(obs.to(next(self.schedule.parameters()).device))[0].cpu()

    def run_state_temperature(self, decided: torch.Tensor | None, state: GlobalState | None) -> tuple[float, torch.Tensor | None]:
        """One step of a run-level policy: ``state`` None (nothing validated yet) gives T_0; otherwise
        the decision ``decided`` (made now from ``state`` if None) at ``state.progress``. Returns the
        temperature and the decision in force."""
        if state is None:
            return self.first_temperature(), decided
        if decided is None:
            decided = self.run_actions(state)
        return run_temperature(decided, state.progress, self.t_min, self.t_max), decided

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


def shipped_policies() -> list[str]:
    """The names ``policy:NAME`` finds in :func:`pretrained_roots` (folders holding a ``policy.json``)."""
    return sorted({d.name for r in pretrained_roots() if r.is_dir() for d in r.iterdir() if (d / "policy.json").exists()})


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
    sched = meta.get("schedule")
    if isinstance(sched, dict) and sched.get("decision", "epoch") not in DECISIONS:
        raise RltempError(f"{json_path}: unknown schedule decision {sched['decision']!r}; this rltemp knows "
                          f"{', '.join(DECISIONS)}")
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


def load_schedule_base(path: str | Path, field: str = "env.base_policy") -> TemperaturePolicy:
    """A policy whose per-epoch schedule a modulator is trained or run on (``env.base_policy``, online
    mode's ``agent.online.schedule``): it must decide every epoch from the state."""
    policy = load_policy(path)
    if policy.decision != "epoch":
        raise ConfigError(f"{field}: {path} decides its schedule once per run (\"decision\": \"{policy.decision}\"); "
                          "a modulator needs a per-epoch schedule (a policy trained with agent.decision: epoch)")
    return policy


class PolicyStrategy(TemperatureStrategy):
    """``policy:PATH`` — a trained policy, frozen and deterministic (transfer: no RL at distill time).

    At the start of each epoch the schedule head reads the Distiller's global state (exactly what
    the environment observes); each step, the modulator (if any) reads the batch's features from
    the logits the step already has. A run-level head decides at the starts of the first and second
    epochs (or, with a probe, once, at the run's first step, from a probe of the student's initial
    weights) and keeps its decision in the buffer ``run_decision`` (so a resumed run goes on with
    it, without probing again). Works for any architecture, seed, dataset or batch size.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.policy = load_policy(path)
        self.per_instance = self.policy.modulator is not None
        self._distiller: Any = None
        self.t_sched = 0.0
        if self.policy.decision == "run":  # (a_start, a_end); NaN until decided
            self.register_buffer("run_decision", torch.full((2,), math.nan))

    def attach(self, distiller: Any) -> None:
        self._distiller = distiller
        if self.policy.probe:  # the weights the student starts with, for the probe at the first step
            self._initial = {k: v.detach().clone() for k, v in distiller.student.state_dict().items()}

    def parameters(self, recurse: bool = True):  # noqa: ANN201 - frozen: nothing for the optimiser
        return iter(())

    def _state(self, progress: float) -> GlobalState:
        d = self._distiller
        return GlobalState(progress, d.last_val_acc if d is not None else 0.0, d.loss_ema if d is not None else 0.0)

    def on_epoch_start(self, epoch: int, num_epochs: int) -> None:
        d = self._distiller
        state = self._state(d.progress if d is not None else epoch / num_epochs)
        if self.policy.decision == "epoch":
            self.t_sched = self.policy.schedule_temperature(state)
            return
        decided = None if bool(torch.isnan(self.run_decision).any()) else self.run_decision
        if self.policy.probe:  # decided at the first step (forward), from the probe
            self._epoch_progress = state.progress
            self.t_sched = math.nan if decided is None else run_temperature(decided, state.progress, self.policy.t_min,
                                                                              self.policy.t_max)
            return
        self.t_sched, decided = self.policy.run_state_temperature(decided, state if epoch > 0 else None)
        if decided is not None:
            self.run_decision.copy_(decided)

    def _decide_from_probe(self) -> None:
        d = self._distiller
        epochs, temperature = self.policy.probe
        acc, loss_ema = d.probe(epochs, temperature, initial=self._initial)
        self.run_decision.copy_(self.policy.run_actions(GlobalState(0.0, acc, loss_ema)))
        self.t_sched = run_temperature(self.run_decision, self._epoch_progress, self.policy.t_min, self.policy.t_max)

    @torch.no_grad()
    def forward(self, teacher_logits, student_logits, labels, progress):  # noqa: ANN001, ANN201
        if math.isnan(self.t_sched):
            if self._distiller is None or not self.policy.probe:
                raise RltempError("the policy has not decided a temperature: attach it to a Distiller first")
            self._decide_from_probe()
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
