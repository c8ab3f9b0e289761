"""rltemp: choose knowledge-distillation temperatures, from fixed T to learned per-instance policies.

Importing rltemp registers the Gymnasium environment ``rltemp/KDTemperature-v0``.
"""

__version__ = "0.1.0"

try:
    from rltemp.envs.registration import register_envs

    register_envs()
except ImportError:  # gymnasium missing: the KD layer still works
    pass
