"""Register the environments with Gymnasium (lazily: the entry points are strings)."""

from __future__ import annotations

ENV_ID = "rltemp/KDTemperature-v0"  # one decision per instance and KD step
SCHEDULE_ENV_ID = "rltemp/KDSchedule-v0"  # one decision per epoch
INSTANCE_EPOCH_ENV_ID = "rltemp/KDInstanceEpoch-v0"  # one decision per training instance and epoch
RUN_SCHEDULE_ENV_ID = "rltemp/KDRunSchedule-v0"  # one schedule decision per student run


def register_envs() -> None:
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="rltemp.envs.kd_env:KDTemperatureEnv")
    if SCHEDULE_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=SCHEDULE_ENV_ID, entry_point="rltemp.envs.schedule_env:KDScheduleEnv")
    if RUN_SCHEDULE_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=RUN_SCHEDULE_ENV_ID, entry_point="rltemp.envs.run_env:KDRunScheduleEnv")
    if INSTANCE_EPOCH_ENV_ID not in gymnasium.registry:
        gymnasium.register(id=INSTANCE_EPOCH_ENV_ID, entry_point="rltemp.envs.instance_epoch_env:KDInstanceEpochEnv")
