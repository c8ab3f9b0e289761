"""Model registry: small MLP / CNN families, the CIFAR KD zoo and a causal transformer; weights-only checkpoints."""

from rltemp.models import cifar_zoo, lm  # noqa: F401  (register the CIFAR zoo and the transformer)
from rltemp.models.base import (
    MODELS,
    build_model,
    count_params,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)

__all__ = ["MODELS", "build_model", "count_params", "load_checkpoint", "load_state_strict", "save_checkpoint"]
