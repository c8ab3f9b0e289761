"""Zoo-style agent presets (``agents/*.yaml``): algorithm, budget, networks, hyperparameters.

A preset trains a factorised temperature policy (:mod:`rltemp.kd.policy`) in up to two stages:

1. the **schedule** head on ``rltemp/KDSchedule-v0`` (one decision per epoch; ``episodes``
   student runs spread over the ``--jobs`` worker processes; every rollout holds
   ``episodes_per_rollout`` whole episodes per worker, so n_steps is set by rltemp);
2. optionally the per-instance **modulator** with the schedule frozen (``modulator.episodes`` > 0;
   per-instance credit from ``env.calibration``): on ``rltemp/KDTemperature-v0``, one decision per
   instance and KD step (``modulator.cadence: step``), or on ``rltemp/KDInstanceEpoch-v0``, one per
   training instance and epoch (``epoch``, as online mode).

Hyperparameter names are checked against the SB3 algorithm's constructor (unknown names list the
valid ones, with a "did you mean") and their types against the constructor's defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltemp.config import apply_overrides, build_dataclass, read_yaml
from rltemp.errors import ConfigError, did_you_mean
from rltemp.kd.features import check_features
from rltemp.kd.policy import ACTIVATIONS

ALGOS = ("ppo", "a2c", "sac")
ON_POLICY = ("ppo", "a2c")
MODULATOR_CADENCES = ("step", "epoch")
DECISIONS = ("epoch", "run")  # the schedule head's cadence (rltemp.kd.policy)
# Arguments that rltemp sets itself (env, policy, logging, seeding, device; rollout length for the schedule).
RESERVED = {"env", "policy", "policy_kwargs", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"}


@dataclass(frozen=True)
class PolicyNetConfig:
    net_arch: list[int] = field(default_factory=lambda: [32, 32])
    activation: str = "tanh"
    log_std_init: float = -1.0
    # start the head's mean action here (schedule: this temperature; None: the action 0, i.e. sqrt(t_min * t_max));
    # a list gives one temperature per output (a run-level head: [T_start, T_end])
    init_temperature: float | list[float] | None = None
    # PPO / A2C: bound the Gaussian's mean by tanh, so it cannot leave the action box (rltemp.agents.policies)
    tanh_mean: bool = False
    # schedule head: standardise the observation by running mean / std (SB3's VecNormalize) while training;
    # the export folds the final statistics into the first layer, so the policy file reads raw features
    normalize_obs: bool = False


@dataclass(frozen=True)
class ModulatorConfig:
    """Stage 2: the per-instance modulator, trained with the schedule frozen (0 episodes: no modulator)."""

    episodes: int = 0
    policy: PolicyNetConfig = field(default_factory=lambda: PolicyNetConfig(net_arch=[64, 64], log_std_init=-1.0))
    hyperparams: dict[str, Any] = field(default_factory=dict)
    # train only the modulator, on top of this trained policy's schedule (a path or shipped name); "": stage 1 first
    schedule_from: str = ""
    # where it learns: "step" (rltemp/KDTemperature-v0, a decision per instance and KD step) or "epoch"
    # (rltemp/KDInstanceEpoch-v0, a decision per training instance and epoch, as online mode)
    cadence: str = "step"


@dataclass(frozen=True)
class OnlineConfig:
    """``online:AGENT``: the schedule a single run starts from (a policy path or shipped name); the
    modulator is then learned by RL during that run (the ``modulator`` settings, one episode, on
    ``rltemp/KDInstanceEpoch-v0``: one decision per instance and epoch), with this per-instance
    credit rule (``uniform`` would give every instance of an epoch the same reward)."""

    schedule: str = "default"
    calibration: str = "influence"
    hyperparams: dict[str, Any] = field(default_factory=dict)  # over modulator.hyperparams, for the online run
    net_arch: list[int] = field(default_factory=list)  # the modulator's hidden layers in this run; empty: modulator's
    activation: str = ""  # the modulator's activation in this run; empty: modulator's
    credit_rank: int = 0  # env.credit_rank for this run: 0 = exact influence cosines, r > 0 = top-r validation directions
    features: list[str] = field(default_factory=list)  # the modulator's observation in this run; empty: env.features

    def net(self, modulator: PolicyNetConfig) -> PolicyNetConfig:
        """The modulator network this run trains: the modulator's, with this section's net_arch / activation."""
        return dataclasses.replace(modulator, net_arch=self.net_arch or modulator.net_arch,
                                   activation=self.activation or modulator.activation)


@dataclass(frozen=True)
class AgentConfig:
    algo: str = "ppo"
    # the schedule head decides once per epoch (rltemp/KDSchedule-v0) or once per student run: the first
    # epoch's T, then a whole schedule from the state after it (rltemp/KDRunSchedule-v0; rltemp.kd.policy)
    decision: str = "epoch"
    episodes: int = 120  # schedule-training student runs, over all workers
    episodes_per_rollout: int = 2  # per worker and rollout (on-policy algorithms): n_steps = this x epochs
    checkpoint_every: int = 1  # rollouts (SAC: episodes) between resumable checkpoints
    # PPO / A2C on a pool of students (env.students): divide each student's advantages by their running
    # RMS, so that a kind of student whose gains are larger does not set the schedule's direction alone
    per_student_advantages: bool = False
    policy: PolicyNetConfig = field(default_factory=PolicyNetConfig)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    modulator: ModulatorConfig = field(default_factory=ModulatorConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def algo_class(name: str):  # noqa: ANN201
    import stable_baselines3 as sb3

    if name not in ALGOS:
        raise ConfigError(f"agent.algo: unknown algorithm {name!r}{did_you_mean(name, ALGOS)}; valid: {', '.join(ALGOS)}")
    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "sac": sb3.SAC}[name]


def _check_net(net: PolicyNetConfig, path: str) -> None:
    if net.activation not in ACTIVATIONS:
        raise ConfigError(f"{path}.activation must be one of {', '.join(ACTIVATIONS)}, got {net.activation!r}")
    if not net.net_arch or any(w < 1 for w in net.net_arch):
        raise ConfigError(f"{path}.net_arch must list positive widths, got {net.net_arch}")


SCHEDULABLE = ("learning_rate", "clip_range")  # may be "lin_<start>": decays linearly to 0 (rl-baselines3-zoo's form)


def linear_start(value: Any) -> float | None:
    """``start`` for a ``"lin_<start>"`` schedule string, None for anything else (a constant)."""
    if isinstance(value, str) and value.startswith("lin_"):
        try:
            return float(value[4:])
        except ValueError:
            return None
    return None


def _check_hyperparams(algo: str, hyperparams: dict[str, Any], path: str, reserved: set[str]) -> None:
    cls = algo_class(algo)
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in RESERVED | reserved and p != "self"]
    for key, value in hyperparams.items():
        if key in reserved:
            raise ConfigError(f"{path}.{key} is set by rltemp (a rollout holds agent.episodes_per_rollout whole episodes)")
        if key not in valid:
            raise ConfigError(f"{path}.{key}: not a {algo.upper()} hyperparameter{did_you_mean(key, valid)}; "
                              f"valid: {', '.join(valid)}")
        default = params[key].default
        if key in SCHEDULABLE and isinstance(value, str):
            start = linear_start(value)
            if start is None or start <= 0:
                raise ConfigError(f"{path}.{key} must be a positive number or 'lin_<start>' (a linear decay to 0, "
                                  f"e.g. lin_1e-3), got {value!r}")
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(default, int) and not isinstance(default, float) and isinstance(value, float):
                ok = value.is_integer()
        else:
            ok = True
        if not ok:
            raise ConfigError(f"{path}.{key} must be like {default!r}, got {value!r}")


def validate_agent(cfg: AgentConfig) -> AgentConfig:
    algo_class(cfg.algo)
    for key in ("episodes", "episodes_per_rollout", "checkpoint_every"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"agent.{key} must be >= 1, got {getattr(cfg, key)}")
    if cfg.modulator.episodes < 0:
        raise ConfigError(f"agent.modulator.episodes must be >= 0, got {cfg.modulator.episodes}")
    if cfg.modulator.cadence not in MODULATOR_CADENCES:
        raise ConfigError(f"agent.modulator.cadence: unknown cadence {cfg.modulator.cadence!r}"
                          f"{did_you_mean(cfg.modulator.cadence, MODULATOR_CADENCES)}; valid: {', '.join(MODULATOR_CADENCES)}")
    if cfg.decision not in DECISIONS:
        raise ConfigError(f"agent.decision: unknown decision {cfg.decision!r}{did_you_mean(cfg.decision, DECISIONS)}; "
                          f"valid: {', '.join(DECISIONS)}")
    if cfg.decision == "run" and (cfg.modulator.episodes > 0 or cfg.modulator.schedule_from):
        raise ConfigError("agent.decision: run trains a schedule head only; a modulator needs an epoch-level "
                          "schedule (agent.decision: epoch) or agent.modulator.episodes: 0")
    _check_net(cfg.policy, "agent.policy")
    _check_net(cfg.modulator.policy, "agent.modulator.policy")
    _check_net(cfg.online.net(cfg.modulator.policy), "agent.online")
    if cfg.policy.tanh_mean and (cfg.algo not in ON_POLICY or cfg.hyperparams.get("use_sde")):
        raise ConfigError("agent.policy.tanh_mean bounds a diagonal Gaussian's mean: it needs "
                          f"{' or '.join(ON_POLICY)} without use_sde (SAC's actions are tanh-squashed already)")
    if cfg.per_student_advantages and cfg.algo not in ON_POLICY:
        raise ConfigError(f"agent.per_student_advantages scales an actor-critic's advantages: it needs "
                          f"{' or '.join(ON_POLICY)}, not {cfg.algo}")
    for key in ("tanh_mean", "normalize_obs"):
        if getattr(cfg.modulator.policy, key):
            raise ConfigError(f"agent.modulator.policy.{key}: only the schedule head (agent.policy) has this option")
    if cfg.online.features:
        check_features(list(cfg.online.features), "agent.online.features")
    if cfg.online.credit_rank < 0:
        raise ConfigError(f"agent.online.credit_rank must be >= 0 (0: exact), got {cfg.online.credit_rank}")
    _check_hyperparams(cfg.algo, cfg.hyperparams, "agent.hyperparams", {"n_steps"} if cfg.algo in ON_POLICY else set())
    _check_hyperparams(cfg.algo, cfg.modulator.hyperparams, "agent.modulator.hyperparams", set())
    _check_hyperparams(cfg.algo, cfg.online.hyperparams, "agent.online.hyperparams", set())
    from rltemp.envs.rewards import CALIBRATIONS

    if cfg.online.calibration not in CALIBRATIONS:
        raise ConfigError(f"agent.online.calibration: unknown calibration {cfg.online.calibration!r}"
                          f"{did_you_mean(cfg.online.calibration, CALIBRATIONS.names())}; "
                          f"valid: {', '.join(CALIBRATIONS.names())}")
    return cfg


def load_agent(path: str | Path | None, overrides: list[str] | None = None) -> AgentConfig:
    """Load ``agents/<algo>.yaml`` with ``agent.key=value`` overrides (the ``agent.`` prefix stripped)."""
    raw = read_yaml(path) if path is not None else {}
    stripped = [o.split(".", 1)[1] for o in overrides or []]
    raw = apply_overrides(raw, stripped)
    return validate_agent(build_dataclass(AgentConfig, raw, "agent"))
