"""rltemp: choose knowledge-distillation temperatures, from fixed T to learned per-instance policies."""

__version__ = "0.1.0"
