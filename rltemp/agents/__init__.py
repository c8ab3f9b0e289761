"""SB3 layer: per-instance temperature policies (design B: instances are VecEnv slots), algorithm
presets, training with checkpoints and resume, weights-only export, and the ``policy:`` strategy.

The only package besides the CLI that imports stable-baselines3.
"""

from rltemp.agents import transfer  # noqa: F401  (registers the "policy" temperature strategy)
