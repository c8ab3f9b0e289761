"""The stable-baselines3 side of a training: the model factory, the logger adapter, checkpoints.

Logging has one path: rltemp owns a run's ``SummaryWriter`` (one event file in the run folder);
SB3's logger is pointed at it through :class:`WriterOutput`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.logger import Figure, HParam, KVWriter, Logger
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import VecEnv

from rltemp.agents.config import SCHEDULABLE, PolicyNetConfig, algo_class, linear_start
from rltemp.errors import ConfigError, RltempError
from rltemp.kd.forms import temperature_to_action
from rltemp.kd.policy import ACTIVATIONS
from rltemp.kd.tblog import write_hparams


class WriterOutput(KVWriter):
    """An SB3 logger output that writes into rltemp's run writer (scalars, histograms, figures, hparams)."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...] | None], step: int = 0) -> None:
        for key, value in key_values.items():
            excluded = key_excluded.get(key)
            if excluded is not None and "tensorboard" in excluded:
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), step)
            elif isinstance(value, torch.Tensor | np.ndarray):
                self.writer.add_histogram(key, value, step)
            elif isinstance(value, Figure):
                self.writer.add_figure(key, value.figure, step, close=value.close)
            elif isinstance(value, HParam):
                write_hparams(self.writer, value.hparam_dict, value.metric_dict)
        self.writer.flush()

    def close(self) -> None:  # the writer belongs to the run, which closes it
        pass


def make_model(algo: str, net: PolicyNetConfig, hyperparams: dict[str, Any], venv: VecEnv, seed: int, writer: Any,
               device: str, t_range: tuple[float, float], n_steps: int | None = None):  # noqa: ANN201
    """An SB3 PPO / A2C model with an ``MlpPolicy`` of ``net``'s shape on ``venv``, logging into
    ``writer``. ``n_steps`` is set by rltemp so that rollouts hold whole episodes; hyperparameters
    ``"lin_<start>"`` are SB3's linear schedules from start to 0."""
    cls = algo_class(algo)
    arch = list(net.net_arch)
    kwargs = {"net_arch": {"pi": arch, "vf": arch}, "activation_fn": ACTIVATIONS[net.activation],
              "log_std_init": net.log_std_init}
    hyperparams = dict(hyperparams)
    for key in SCHEDULABLE:
        start = linear_start(hyperparams.get(key))
        if start is not None:
            hyperparams[key] = LinearSchedule(start, 0.0, 1.0)
    if n_steps is not None:
        hyperparams["n_steps"] = n_steps
    rollout = hyperparams.get("n_steps", 0) * venv.num_envs
    if algo == "ppo" and rollout and hyperparams.get("batch_size", 64) > rollout:
        hyperparams["batch_size"] = rollout  # a minibatch cannot exceed the rollout (short budgets)
    if algo == "ppo" and rollout == 1 and hyperparams.get("normalize_advantage", True):
        raise ConfigError("a PPO rollout of a single decision cannot normalise its advantages: raise "
                          "agent.episodes_per_rollout or --jobs (one decision per episode here)")
    model = cls("MlpPolicy", venv, policy_kwargs=kwargs, seed=seed, device=device, verbose=0, **hyperparams)
    model.set_logger(Logger(folder=None, output_formats=[WriterOutput(writer)] if writer is not None else []))
    if net.init_temperature is not None:
        init_mean_action(model, net.init_temperature, *t_range)
    return model


def init_mean_action(model: Any, temperature: float, t_min: float, t_max: float) -> None:
    """Shrink the action head's weights and set its bias so that the mean action maps to
    ``temperature`` everywhere (the exploration noise stays as configured)."""
    if not t_min <= temperature <= t_max:
        raise RltempError(f"agent.policy.init_temperature={temperature} lies outside [t_min, t_max] = [{t_min}, "
                          f"{t_max}]")
    head = model.policy.action_net
    with torch.no_grad():
        head.weight.mul_(0.01)
        head.bias.fill_(temperature_to_action(float(temperature), t_min, t_max))


def restore(model: Any, state: dict[str, Any], device: str) -> None:
    """Load a checkpoint's parameters and optimiser state into ``model`` (and its step counter)."""
    model.set_parameters(state["params"], exact_match=True, device=device)
    model.num_timesteps = int(state["num_timesteps"])
