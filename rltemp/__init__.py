"""rltemp: choose knowledge-distillation temperatures, from fixed T to learned per-instance policies.

``import rltemp`` is light: it imports neither gymnasium nor stable-baselines3. The Gymnasium
environment ``rltemp/KDTemperature-v0`` is registered by ``import rltemp.envs``.
"""

__version__ = "0.1.0"
