"""Gymnasium layer: ``rltemp/KDRunSchedule-v0`` (one schedule decision per student run, from a
probe: the shipped policy's) and ``rltemp/KDInstanceEpoch-v0`` (one decision per training instance
and epoch: online mode's), the pool of training pairs, reference runs and per-instance credit. Does
not import stable-baselines3.

Importing this package registers the environments with Gymnasium (``import rltemp.envs``, or
``gymnasium.make("rltemp.envs:rltemp/KDRunSchedule-v0")``, which imports it for you).
"""

from rltemp.envs.registration import ENTRY_POINTS, INSTANCE_EPOCH_ENV_ID, RUN_SCHEDULE_ENV_ID, register_envs

register_envs()

__all__ = ["ENTRY_POINTS", "INSTANCE_EPOCH_ENV_ID", "RUN_SCHEDULE_ENV_ID", "register_envs"]
