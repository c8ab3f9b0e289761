"""SB3 layer: per-instance temperature policies (instances are VecEnv slots), algorithm presets,
training with checkpoints and resume, weights-only export.

With the CLI's experiments layer above it, the only package that imports stable-baselines3.
"""
