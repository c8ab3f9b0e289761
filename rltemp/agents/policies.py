"""SB3 actor-critic policies for the schedule head: an asymmetric critic and a tanh-bounded mean.

**Asymmetric actor-critic.** A schedule is trained on a pool of students, but the deployed policy
sees only what every run has (progress, validation accuracy). During training the environment can
add columns that only the critic may read (``env.critic_features``: e.g. the reference run's
validation accuracy at the same epoch, which says what is normal for *this* student), so that the
advantage of a decision is measured against the right baseline — the value depends on which
student this is, the action must not. The actor's feature extractor zeroes the critic-only columns,
so its first layer's weights for them never receive a gradient nor affect an action; export drops
those columns (:func:`rltemp.agents.export.export_policy`), and the exported policy is exactly the actor.

**Bounded mean** (``agent.policy.tanh_mean``). SB3's Gaussian policy clips a sampled action to the
action box only in the environment; its mean is unbounded. When one kind of student pays well for
the box's edge (T = t_min), the mean can be pushed past it, and then every sample of every student
clips to the edge: no sample differs from another, so no advantage tells the mean to come back. With
``tanh_mean`` the mean is ``tanh`` of the action head's output, so it stays inside the box and about
half of the samples at the edge still explore the inside (the log-probabilities remain those of an
ordinary diagonal Gaussian around that mean). The exported head applies the same ``tanh``
(:class:`rltemp.kd.policy.ActorNet` with ``squash``), as SAC's does.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from rltemp.errors import ConfigError


class ActorObservation(BaseFeaturesExtractor):
    """The actor's view of the observation: its first ``actor_dims`` columns, the rest zeroed (same width)."""

    def __init__(self, observation_space: gym.Space, actor_dims: int) -> None:
        dim = get_flattened_obs_dim(observation_space)
        super().__init__(observation_space, dim)
        mask = torch.zeros(dim)
        mask[:actor_dims] = 1.0
        self.register_buffer("mask", mask)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return observations.flatten(1) * self.mask


class ScheduleActorCriticPolicy(ActorCriticPolicy):
    """``MlpPolicy`` with two options (PPO / A2C): ``actor_dims`` — separate feature extractors, the
    critic reads the whole observation, the actor only its first ``actor_dims`` columns; and
    ``tanh_mean`` — the Gaussian's mean is ``tanh`` of the action head (see the module doc)."""

    def __init__(self, *args: Any, actor_dims: int | None = None, tanh_mean: bool = False, **kwargs: Any) -> None:
        self.actor_dims, self.tanh_mean = actor_dims, tanh_mean
        if actor_dims is not None:
            kwargs["share_features_extractor"] = False
        super().__init__(*args, **kwargs)
        if tanh_mean and not isinstance(self.action_dist, DiagGaussianDistribution):
            raise ConfigError("agent.policy.tanh_mean needs a diagonal Gaussian policy (a Box action space, no use_sde)")
        if actor_dims is not None:
            self.pi_features_extractor = ActorObservation(self.observation_space, actor_dims)

    def _get_action_dist_from_latent(self, latent_pi: torch.Tensor) -> Distribution:
        if not self.tanh_mean:
            return super()._get_action_dist_from_latent(latent_pi)
        return self.action_dist.proba_distribution(torch.tanh(self.action_net(latent_pi)), self.log_std)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "actor_dims": self.actor_dims, "tanh_mean": self.tanh_mean}


AsymmetricActorCriticPolicy = ScheduleActorCriticPolicy  # the name in SB3 files saved before tanh_mean existed
