"""Gymnasium layer: ``rltemp/KDTemperature-v0``, observation features, rewards, calibration.

Does not import stable-baselines3.
"""

from rltemp.envs.registration import ENV_ID, register_envs

__all__ = ["ENV_ID", "register_envs"]
