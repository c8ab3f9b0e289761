"""Register the environments with Gymnasium (lazily: the entry points are strings)."""

from __future__ import annotations

RUN_SCHEDULE_ENV_ID = "rltemp/KDRunSchedule-v0"  # one schedule decision per student run, from a probe
INSTANCE_EPOCH_ENV_ID = "rltemp/KDInstanceEpoch-v0"  # one decision per training instance and epoch
ENTRY_POINTS = {
    RUN_SCHEDULE_ENV_ID: "rltemp.envs.run_env:KDRunScheduleEnv",
    INSTANCE_EPOCH_ENV_ID: "rltemp.envs.instance_epoch_env:KDInstanceEpochEnv",
}


def register_envs() -> None:
    import gymnasium

    for env_id, entry_point in ENTRY_POINTS.items():
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point)
