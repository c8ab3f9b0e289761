"""Register ``rltemp/KDTemperature-v0`` with Gymnasium (lazily: the entry point is a string)."""

from __future__ import annotations

ENV_ID = "rltemp/KDTemperature-v0"


def register_envs() -> None:
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point="rltemp.envs.kd_env:KDTemperatureEnv")
