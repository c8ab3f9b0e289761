"""SB3 layer: schedule-policy training with checkpoints and resume (``train``), its environments
(``factories``, ``ray_envs``), callbacks, the SB3 model factory (``sb3``), weights-only export, and
online mode (``online``: instances are the slots of a VecEnv, ``vec_env``).

With the CLI's experiments layer above it, the only package that imports stable-baselines3.
"""
