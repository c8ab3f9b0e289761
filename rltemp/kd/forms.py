"""Policy forms: one class per kind of policy head, each owning its ``policy.json`` head, its
observation width, its decision rule and its action → temperature map.

Every consumer — the ``policy:`` strategy, :class:`~rltemp.kd.controller.TemperatureController`,
the environments, the training callbacks and the export — asks the form, so a new form
touches this file (and its environment) only.

Action map (all forms): an action a ∈ [-1, 1] is a temperature on a log scale,
T = exp(log t_min + (a + 1) / 2 · (log t_max − log t_min)), out-of-range actions clipped.

- :class:`ProbeSchedule` (``"decision": "run"``): one decision per student run, made before the first
  epoch from a *probe* — a throwaway copy of the student distilled for ``probe.epochs`` of an epoch
  at ``probe.temperature`` (:meth:`~rltemp.kd.trainer.Distiller.probe`); action (2,) = (a_start,
  a_end), and the epoch at progress p runs at the action (1 − p) a_start + p a_end: a geometric
  schedule from T(a_start) toward T(a_end). One decision per run is a contextual bandit, credited
  with the whole run's gain. A head with ``"features": []`` is a constant schedule (the decision is
  its bias): it has no probe, and costs nothing before the first epoch.
- :class:`Modulator` (``"decision": "instance"``): per instance, on top of a schedule:
  log m_i = log(max_multiplier) · (b_i − mean_batch b), T_i = clip(T_sched · m_i, t_min, t_max).
  Centring in log space keeps T_sched the geometric mean of every batch.

A schedule head may carry its training *support* (:class:`Support`): the range of each feature over
the probes of the students it was trained on. A student whose probe lies outside it gets the whole
run at the support's fallback temperature instead of an extrapolated decision (benchmarks/RESULTS.md,
"A support guard").
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from rltemp.errors import RltempError
from rltemp.registry import Registry

ACTION_MAPPING = "T = exp(log t_min + (a+1)/2 (log t_max - log t_min))"  # as policy.json records it


def action_to_temperature(action: torch.Tensor, t_min: float, t_max: float) -> torch.Tensor:
    """Map actions in [-1, 1] to [t_min, t_max] on a log scale (clipping out-of-range values)."""
    a = action.clamp(-1.0, 1.0)
    lo, hi = math.log(t_min), math.log(t_max)
    return torch.exp(lo + (a + 1) / 2 * (hi - lo))


def temperature_to_action(t: float, t_min: float, t_max: float) -> float:
    """Inverse of :func:`action_to_temperature`."""
    lo, hi = math.log(t_min), math.log(t_max)
    return 2 * (math.log(t) - lo) / (hi - lo) - 1


@dataclass(frozen=True)
class Probe:
    """A probe: ``epochs`` (a fraction of one epoch, in (0, 1]) at ``temperature``."""

    epochs: float
    temperature: float


@dataclass(frozen=True)
class Support:
    """Per feature of a schedule head, the [low, high] its training students' probes spanned, and the
    constant temperature a student outside that box runs at (``fallback``)."""

    low: list[float]
    high: list[float]
    fallback: float
    students: int = 0  # how many training students the box is taken over (a record)

    def covers(self, obs: torch.Tensor) -> bool:
        """Whether every feature of ``obs`` (F,) lies in its training range (NaN lies outside)."""
        lo, hi = torch.tensor(self.low, dtype=obs.dtype), torch.tensor(self.high, dtype=obs.dtype)
        return bool(((obs >= lo) & (obs <= hi)).all())

    def to_dict(self) -> dict[str, Any]:
        return {"low": list(self.low), "high": list(self.high), "fallback_temperature": self.fallback,
                "students": self.students}

    @classmethod
    def from_dict(cls, raw: Any, n_features: int, where: str) -> Support:
        try:
            sup = cls([float(v) for v in raw["low"]], [float(v) for v in raw["high"]],
                      float(raw["fallback_temperature"]), int(raw.get("students", 0)))
        except (KeyError, TypeError, ValueError) as e:
            raise RltempError(f"{where}: malformed support ({e.__class__.__name__}: {e})") from None
        if len(sup.low) != n_features or len(sup.high) != n_features:
            raise RltempError(f"{where}: support needs one low and one high per feature ({n_features}), got "
                              f"{len(sup.low)} and {len(sup.high)}")
        if not all(math.isfinite(a) and math.isfinite(b) and a <= b for a, b in zip(sup.low, sup.high, strict=True)):
            raise RltempError(f"{where}: support ranges must be finite with low <= high")
        return sup


@dataclass(frozen=True)
class Head:
    """One head of ``policy.json``: what it reads, its network, how it was trained. Unknown keys are
    kept (``extra``) so a record written by a newer rltemp still loads where it can."""

    decision: str
    algo: str
    features: list[str]
    net_arch: list[int]
    activation: str
    reward_reference: str = ""  # schedules: the reference the training reward was measured against
    probe: Probe | None = None  # run-level schedules
    normalize_obs: dict[str, Any] | None = None  # a record: the statistics folded into the first layer
    max_multiplier: float = 1.0  # modulators
    support: Support | None = None  # run-level schedules: where their training students' probes lay
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"algo": self.algo, "features": list(self.features), "net_arch": list(self.net_arch),
                               "activation": self.activation, "decision": self.decision}
        if self.reward_reference:
            out["reward_reference"] = self.reward_reference
        if self.probe is not None:
            out["probe"] = dataclasses.asdict(self.probe)
        if self.normalize_obs is not None:
            out["normalize_obs"] = self.normalize_obs
        if self.decision == Modulator.decision:
            out["max_multiplier"] = self.max_multiplier
        if self.support is not None:
            out["support"] = self.support.to_dict()
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> Head:
        """Parse a head, with one-line errors naming ``where`` (the file and head)."""
        if not isinstance(raw, dict):
            raise RltempError(f"{where}: a head must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        try:
            probe = raw.get("probe")
            features = [str(f) for f in raw["features"]]
            support = raw.get("support")
            head = cls(
                decision=str(raw.get("decision", "")), algo=str(raw["algo"]),
                features=features, net_arch=[int(w) for w in raw["net_arch"]],
                activation=str(raw["activation"]), reward_reference=str(raw.get("reward_reference", "")),
                probe=Probe(float(probe["epochs"]), float(probe["temperature"])) if probe else None,
                normalize_obs=raw.get("normalize_obs"), max_multiplier=float(raw.get("max_multiplier", 1.0)),
                extra={k: v for k, v in raw.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as e:
            raise RltempError(f"{where}: malformed head ({e.__class__.__name__}: {e})") from None
        if not head.features and head.decision != ProbeSchedule.decision:
            raise RltempError(f"{where}: the head has no feature list")
        if support is not None:
            head = dataclasses.replace(head, support=Support.from_dict(support, len(features), where))
        return head


class Form:
    """Base of the forms: built from a :class:`Head` and the policy's temperature range."""

    decision: ClassVar[str]
    outputs: ClassVar[int]  # action width

    def __init__(self, head: Head, t_min: float, t_max: float) -> None:
        self.head, self.t_min, self.t_max = head, float(t_min), float(t_max)
        self.check()

    def check(self) -> None:
        """Form-specific checks of the head (one-line errors)."""

    @property
    def features(self) -> list[str]:
        return list(self.head.features)

    @property
    def obs_dim(self) -> int:
        return len(self.head.features)

    @property
    def probe(self) -> Probe | None:
        return self.head.probe

    def temperature(self, action: torch.Tensor, progress: float) -> float:
        """The temperature of the epoch at ``progress`` under the decision ``action``."""
        raise NotImplementedError

    def constant(self, t: float) -> torch.Tensor:
        """The decision (outputs,) that runs every epoch at ``t``."""
        return torch.full((self.outputs,), temperature_to_action(t, self.t_min, self.t_max))

    def schedule(self, actions: Any, epochs: int) -> list[float]:
        """Every epoch's temperature for a run's decisions (k, outputs) — one row per decision made."""
        raise NotImplementedError


FORMS: Registry[type[Form]] = Registry("policy form")


@FORMS.register("run")
class ProbeSchedule(Form):
    decision = "run"
    outputs = 2

    def check(self) -> None:
        if not self.head.features:  # a constant schedule: its decision is the bias, nothing to probe
            if self.head.probe is not None or self.head.support is not None:
                raise RltempError("a run-level schedule that reads no features is a constant: it takes no "
                                  "probe and no support")
            return
        if self.head.probe is None:
            raise RltempError("a run-level schedule decides from a probe (\"probe\": {\"epochs\": ..., "
                              "\"temperature\": ...}); the two-decision run-level form was retired "
                              "(benchmarks/RESULTS.md, ablations Z-Z3)")
        sup = self.head.support
        if sup is not None and not self.t_min <= sup.fallback <= self.t_max:
            raise RltempError(f"support: fallback_temperature must lie in [t_min, t_max] = [{self.t_min}, "
                              f"{self.t_max}], got {sup.fallback}")

    @staticmethod
    def action(actions: torch.Tensor, progress: float) -> torch.Tensor:
        """(1 − p) a_start + p a_end, both clipped to [-1, 1] first."""
        a = torch.as_tensor(actions, dtype=torch.float32).reshape(2).clamp(-1.0, 1.0)
        p = min(max(float(progress), 0.0), 1.0)
        return ((1 - p) * a[0] + p * a[1]).reshape(1)

    def temperature(self, action: torch.Tensor, progress: float) -> float:
        return float(action_to_temperature(self.action(action, progress), self.t_min, self.t_max)[0])

    def schedule(self, actions: Any, epochs: int) -> list[float]:
        a = torch.as_tensor(actions, dtype=torch.float32).reshape(-1, 2)[-1]
        return [self.temperature(a, k / epochs) for k in range(epochs)]


@FORMS.register("instance")
class Modulator(Form):
    decision = "instance"
    outputs = 1

    def check(self) -> None:
        if not (self.head.max_multiplier >= 1 and math.isfinite(self.head.max_multiplier)):
            raise RltempError(f"a modulator's max_multiplier must be a finite number >= 1, got "
                              f"{self.head.max_multiplier}")

    def log_multiplier(self, b: torch.Tensor) -> torch.Tensor:
        """log m_i = log(max_multiplier) · (b_i − mean b), b clipped to [-1, 1]."""
        b = b.clamp(-1.0, 1.0)
        return math.log(self.head.max_multiplier) * (b - b.mean())

    def temperatures(self, t_sched: float | torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-instance temperatures for actions ``b`` (N,) around the schedule's ``t_sched``."""
        return (t_sched * torch.exp(self.log_multiplier(b))).clamp(self.t_min, self.t_max)


def schedule_form(head: Head, t_min: float, t_max: float, where: str = "policy") -> Form:
    """The schedule form a head declares (``run``), checked (the per-epoch form of earlier versions was
    retired with the policy that used it: ``benchmarks/RESULTS.md``, ablation J)."""
    if head.decision == Modulator.decision or head.decision not in FORMS:
        valid = [n for n in FORMS.names() if n != Modulator.decision]
        raise RltempError(f"{where}: unknown schedule decision {head.decision!r}; this rltemp knows {', '.join(valid)}")
    try:
        return FORMS.get(head.decision)(head, t_min, t_max)
    except RltempError as e:
        raise RltempError(f"{where}: {e}") from None
