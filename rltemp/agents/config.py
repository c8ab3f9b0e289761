"""Zoo-style agent presets (``agents/*.yaml``): algorithm, budget, networks, hyperparameters.

A preset trains the **schedule** head of a temperature policy (:mod:`rltemp.kd.forms`) on
``rltemp/KDRunSchedule-v0`` (one decision per run, from a probe): ``episodes`` student runs spread
over the ``--jobs`` workers, every rollout holding ``episodes_per_rollout`` of them per worker (so
n_steps is set by rltemp). Its ``modulator`` section is online mode's (``online:AGENT``): the
per-instance network and hyperparameters learned during one student's run.

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
from rltemp.kd.policy import ACTIVATIONS

ALGOS = ("ppo", "a2c")  # on-policy actor-critics: one code path, Monte-Carlo advantages with gamma = gae_lambda = 1
# Arguments that rltemp sets itself (env, policy, logging, seeding, device; rollout length for the schedule).
RESERVED = {"env", "policy", "policy_kwargs", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"}


@dataclass(frozen=True)
class PolicyNetConfig:
    net_arch: list[int] = field(default_factory=lambda: [32, 32])
    activation: str = "tanh"
    log_std_init: float = -1.0
    # start the head's mean action here (this temperature); None: the action 0, i.e. sqrt(t_min * t_max)
    init_temperature: float | None = None
    # standardise the observation by running mean / std (SB3's VecNormalize) while training;
    # the export folds the final statistics into the first layer, so the policy file reads raw features
    normalize_obs: bool = False


@dataclass(frozen=True)
class ModulatorConfig:
    """Online mode's per-instance modulator (``online:AGENT``), learned by RL during one student's run
    on ``rltemp/KDInstanceEpoch-v0`` on top of ``env.base_policy``'s schedule; a minibatch is one
    epoch's decisions unless ``hyperparams.batch_size`` says otherwise."""

    policy: PolicyNetConfig = field(default_factory=lambda: PolicyNetConfig(net_arch=[16, 16], activation="relu"))
    hyperparams: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    algo: str = "ppo"
    episodes: int = 120  # schedule-training student runs, over all workers
    episodes_per_rollout: int = 4  # per worker and rollout (one decision each): n_steps
    checkpoint_every: int = 1  # rollouts between resumable checkpoints
    # rollouts between evaluations on held-out training students (env.eval_seeds), which select the policy
    # that policy.pt holds (the final one goes to last/); 0: no selection, the final policy
    eval_every: int = 0
    # on a pool of pairs (env.pool): divide each pair's advantages by their running RMS, so that a kind
    # of student whose gains are larger does not set the schedule's direction alone
    per_pair_advantages: bool = False
    policy: PolicyNetConfig = field(default_factory=PolicyNetConfig)
    hyperparams: dict[str, Any] = field(default_factory=dict)
    modulator: ModulatorConfig = field(default_factory=ModulatorConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def algo_class(name: str):  # noqa: ANN201
    import stable_baselines3 as sb3

    if name not in ALGOS:
        raise ConfigError(f"agent.algo: unknown algorithm {name!r}{did_you_mean(name, ALGOS)}; valid: "
                          f"{', '.join(ALGOS)}")
    return {"ppo": sb3.PPO, "a2c": sb3.A2C}[name]


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
            raise ConfigError(f"{path}.{key} is set by rltemp (a rollout holds agent.episodes_per_rollout whole "
                              f"episodes)")
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
    if cfg.eval_every < 0:
        raise ConfigError(f"agent.eval_every must be >= 0 (0: no selection), got {cfg.eval_every}")
    _check_net(cfg.policy, "agent.policy")
    _check_net(cfg.modulator.policy, "agent.modulator.policy")
    for key in ("init_temperature", "normalize_obs"):
        if getattr(cfg.modulator.policy, key):
            raise ConfigError(f"agent.modulator.policy.{key}: only the schedule head (agent.policy) has this option")
    _check_hyperparams(cfg.algo, cfg.hyperparams, "agent.hyperparams", {"n_steps"})
    _check_hyperparams(cfg.algo, cfg.modulator.hyperparams, "agent.modulator.hyperparams", set())
    return cfg


def load_agent(path: str | Path | None, overrides: list[str] | None = None) -> AgentConfig:
    """Load ``agents/<algo>.yaml`` with ``agent.key=value`` overrides (the ``agent.`` prefix stripped)."""
    raw = read_yaml(path) if path is not None else {}
    stripped = [o.split(".", 1)[1] for o in overrides or []]
    raw = apply_overrides(raw, stripped)
    return validate_agent(build_dataclass(AgentConfig, raw, "agent"))
