"""Gymnasium layer: ``rltemp/KDTemperature-v0``, rewards, calibration. Does not import stable-baselines3.

Importing this package registers the environment with Gymnasium (``import rltemp.envs``, or
``gymnasium.make("rltemp.envs:rltemp/KDTemperature-v0")``, which imports it for you).
"""

from rltemp.envs.registration import ENV_ID, register_envs

register_envs()

__all__ = ["ENV_ID", "register_envs"]
