"""RL-free knowledge distillation: loss, temperature strategies, features, the Distiller loop,
whole runs, and trained policies at distill time (``policy:``).

This layer imports neither gymnasium nor stable-baselines3 (tested at run time).
"""

from rltemp.kd import policy as _policy  # noqa: F401  (registers the policy: strategy)
from rltemp.kd import token_methods as _token_methods  # noqa: F401  (registers adakd:, atkd:)
from rltemp.kd.loss import kd_loss
from rltemp.kd.strategies import STRATEGIES, StrategyContext, TemperatureStrategy, build_strategy, parse_spec
from rltemp.kd.trainer import Distiller, StepResult, evaluate

__all__ = [
    "STRATEGIES", "Distiller", "StepResult", "StrategyContext", "TemperatureStrategy",
    "build_strategy", "evaluate", "kd_loss", "parse_spec",
]
