"""An SB3 actor-critic whose critic sees more than its actor (an asymmetric actor-critic).

A schedule is trained on a pool of students, but the deployed policy sees only what every run has
(progress, validation accuracy). During training the environment can add columns that only the
critic may read (``env.critic_features``: e.g. the reference run's validation accuracy at the same
epoch, which says what is normal for *this* student), so that the advantage of a decision is
measured against the right baseline — the value depends on which student this is, the action
must not. The actor's feature extractor zeroes the critic-only columns, so its first layer's
weights for them never receive a gradient nor affect an action; export drops those columns
(:func:`rltemp.agents.export.export_policy`), and the exported policy is exactly the actor.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor


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


class AsymmetricActorCriticPolicy(ActorCriticPolicy):
    """``MlpPolicy`` with separate feature extractors: the critic reads the whole observation, the
    actor only its first ``actor_dims`` columns (PPO / A2C)."""

    def __init__(self, *args: Any, actor_dims: int, **kwargs: Any) -> None:
        self.actor_dims = actor_dims
        kwargs["share_features_extractor"] = False
        super().__init__(*args, **kwargs)
        self.pi_features_extractor = ActorObservation(self.observation_space, actor_dims)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "actor_dims": self.actor_dims}
