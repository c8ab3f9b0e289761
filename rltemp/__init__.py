"""rltemp: choose knowledge-distillation temperatures, from fixed T to policies learned by RL.

Public API (plain torch; ``import rltemp`` loads neither gymnasium nor stable-baselines3):

- :func:`rltemp.kd_loss` — the vectorised KD loss with per-instance temperatures;
- :class:`rltemp.TemperatureController` — a trained policy inside your own training loop.

The Gymnasium environments are registered by ``import rltemp.envs``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TemperatureController", "kd_loss", "__version__"]


def __getattr__(name: str) -> Any:  # lazy: `import rltemp` stays light
    if name == "kd_loss":
        from rltemp.kd.loss import kd_loss

        return kd_loss
    if name == "TemperatureController":
        from rltemp.kd.controller import TemperatureController

        return TemperatureController
    raise AttributeError(f"module 'rltemp' has no attribute {name!r}")
