"""Model registry: small MLP / CNN families and the CIFAR KD zoo; weights-only checkpoints."""

from rltemp.models import cifar_zoo  # noqa: F401  (registers the CIFAR zoo)
from rltemp.models.base import (
    MODELS,
    build_model,
    count_params,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)

__all__ = ["MODELS", "build_model", "count_params", "load_checkpoint", "load_state_strict", "save_checkpoint"]
