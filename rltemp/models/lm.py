"""``transformer``: a small causal (GPT-style, pre-norm) transformer over character ids.

``(B, L)`` ids -> ``(B, L, V)`` next-character logits; position i attends to positions <= i only
(``nn.TransformerEncoder`` with a causal mask). Learned token and position embeddings, ``layers``
pre-norm blocks of ``heads``-head attention and a GELU MLP of ``4 · width``, a final LayerNorm and a
linear read-out. The longest window it reads is the data's ``seq_len`` (its input shape): a longer
one is refused, and a checkpoint made for another length or vocabulary does not load.
"""

from __future__ import annotations

import torch
from torch import nn

from rltemp.errors import ConfigError
from rltemp.models.base import MODELS, check_dropout, positive_ints


class CausalTransformer(nn.Module):
    def __init__(self, vocab: int, max_len: int, width: int, layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.max_len = max_len
        self.tokens = nn.Embedding(vocab, width)
        self.positions = nn.Embedding(max_len, width)
        block = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, activation="gelu", batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, vocab)
        # the causal mask of the longest window, made once (not saved: checkpoints hold weights only)
        self.register_buffer("causal", nn.Transformer.generate_square_subsequent_mask(max_len), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length > self.max_len:
            raise ValueError(f"a window of {length} characters is longer than this model's {self.max_len}")
        h = self.tokens(x) + self.positions(torch.arange(length, device=x.device))
        return self.head(self.norm(self.blocks(h, mask=self.causal[:length, :length], is_causal=True)))


@MODELS.register("transformer")
def transformer(input_shape: tuple[int, ...], num_classes: int, width: int = 128, layers: int = 2, heads: int = 4,
                dropout: float = 0.0) -> nn.Module:
    """Causal character model for ``text`` windows of shape (L,); ``num_classes`` is the vocabulary."""
    positive_ints("transformer", width=width, layers=layers, heads=heads)
    if width % heads:
        raise ConfigError(f"transformer: width {width} must be a multiple of heads {heads}")
    if len(input_shape) != 1:
        raise ConfigError(f"transformer: reads windows of character ids (shape (L,)), not inputs of shape "
                          f"{tuple(input_shape)}; use it with data.name=text")
    check_dropout("transformer", dropout)
    return CausalTransformer(num_classes, input_shape[0], width, layers, heads, float(dropout))
