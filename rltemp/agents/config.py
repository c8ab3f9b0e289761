"""Zoo-style agent presets (``agents/*.yaml``): algorithm, budget, policy network, hyperparameters.

Hyperparameter names are checked against the SB3 algorithm's constructor (unknown names list the
valid ones, with a "did you mean") and their types against the constructor's defaults.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rltemp.config import apply_overrides, build_dataclass, read_yaml
from rltemp.errors import ConfigError, did_you_mean

ALGOS = ("ppo", "a2c", "sac")
ACTIVATIONS = ("tanh", "relu")
# Arguments that rltemp sets itself (env, policy, logging, seeding, device).
RESERVED = {"env", "policy", "policy_kwargs", "tensorboard_log", "verbose", "seed", "device", "_init_setup_model"}


@dataclass(frozen=True)
class PolicyNetConfig:
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "tanh"
    log_std_init: float = -0.5
    # start the policy's mean action at this temperature (None: the action 0, i.e. sqrt(t_min * t_max))
    init_temperature: float | None = None


@dataclass(frozen=True)
class AgentConfig:
    algo: str = "ppo"
    episodes: int = 10  # student runs (episodes) to train on
    checkpoint_every: int = 1  # episodes between resumable checkpoints
    policy: PolicyNetConfig = field(default_factory=PolicyNetConfig)
    hyperparams: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        import dataclasses

        return dataclasses.asdict(self)


def algo_class(name: str):  # noqa: ANN201
    import stable_baselines3 as sb3

    if name not in ALGOS:
        raise ConfigError(f"agent.algo: unknown algorithm {name!r}{did_you_mean(name, ALGOS)}; valid: {', '.join(ALGOS)}")
    return {"ppo": sb3.PPO, "a2c": sb3.A2C, "sac": sb3.SAC}[name]


def validate_agent(cfg: AgentConfig) -> AgentConfig:
    cls = algo_class(cfg.algo)
    if cfg.episodes < 1:
        raise ConfigError(f"agent.episodes must be >= 1, got {cfg.episodes}")
    if cfg.checkpoint_every < 1:
        raise ConfigError(f"agent.checkpoint_every must be >= 1, got {cfg.checkpoint_every}")
    if cfg.policy.activation not in ACTIVATIONS:
        raise ConfigError(f"agent.policy.activation must be one of {', '.join(ACTIVATIONS)}, got {cfg.policy.activation!r}")
    if not cfg.policy.net_arch or any(w < 1 for w in cfg.policy.net_arch):
        raise ConfigError(f"agent.policy.net_arch must list positive widths, got {cfg.policy.net_arch}")
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p in params if p not in RESERVED and p != "self"]
    for key, value in cfg.hyperparams.items():
        if key not in valid:
            raise ConfigError(f"agent.hyperparams.{key}: not a {cfg.algo.upper()} hyperparameter"
                              f"{did_you_mean(key, valid)}; valid: {', '.join(valid)}")
        default = params[key].default
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            if ok and isinstance(default, int) and not isinstance(default, float) and isinstance(value, float):
                ok = value.is_integer()
        else:
            ok = True
        if not ok:
            raise ConfigError(f"agent.hyperparams.{key} must be like {default!r}, got {value!r}")
    return cfg


def load_agent(path: str | Path | None, overrides: list[str] | None = None) -> AgentConfig:
    """Load ``agents/<algo>.yaml`` with ``agent.key=value`` overrides (the ``agent.`` prefix stripped)."""
    raw = read_yaml(path) if path is not None else {}
    stripped = [o.split(".", 1)[1] for o in overrides or []]
    raw = apply_overrides(raw, stripped)
    return validate_agent(build_dataclass(AgentConfig, raw, "agent"))
