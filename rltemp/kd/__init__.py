"""RL-free knowledge distillation: loss, temperature strategies, the Distiller loop, whole runs.

This layer imports neither gymnasium nor stable-baselines3.
"""

from rltemp.kd.loss import kd_loss
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, build_strategy, parse_spec
from rltemp.kd.trainer import Distiller, StepResult, evaluate

__all__ = [
    "STRATEGIES", "Distiller", "StepResult", "StrategyContext", "TemperatureStrategy",
    "build_strategy", "evaluate", "kd_loss", "parse_spec",
]
