"""Exact parameter and KV-cache accounting from a config alone (no weights).

These formulas are the memory model of the search stage, so a test checks them against the parameters that
the model class actually allocates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from .blocks import BlockConfig

if TYPE_CHECKING:  # torch and transformers are not imported here: `puzzle-ray inspect` runs without them
    import torch

    from .config import PuzzleConfig
    from .shape import ModelShape

    Shaped = Union[PuzzleConfig, ModelShape]

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(dtype: str | torch.dtype) -> int:
    if not isinstance(dtype, str):  # a torch.dtype
        return dtype.itemsize
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype={dtype!r}: expected one of {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def attention_params(config: Shaped, block: BlockConfig) -> int:
    """Weights of the attention sub-block, its input norm included (0 for no-op); its kind counts them."""
    return block.attention.kind.params(config, block.attention)


def ffn_params(config: Shaped, block: BlockConfig) -> int:
    """Weights of the FFN sub-block, its input norm included (0 for no-op); its kind counts them."""
    return block.ffn.kind.params(config, block.ffn)


def block_params(config: Shaped, block: BlockConfig) -> int:
    return attention_params(config, block) + ffn_params(config, block)


def kv_bytes_per_token(config: Shaped, block: BlockConfig, dtype: str | torch.dtype = "bfloat16") -> int:
    """KV-cache bytes one token adds in this layer (2 x kv_heads x head_dim x bytes for GQA; 0 without a cache)."""
    return block.attention.kind.kv_bytes_per_token(config, block.attention, dtype_bytes(dtype))


def non_block_params(config: Shaped) -> int:
    """Embeddings, final norm and LM head (counted once when tied)."""
    emb = config.vocab_size * config.hidden_size
    return emb + config.hidden_size + (0 if config.tie_word_embeddings else emb)


@dataclass(frozen=True)
class ModelStats:
    num_params: int
    block_params: int
    non_block_params: int
    kv_bytes_per_token: int
    """Summed over layers, at the dtype asked for."""
    num_gqa_layers: int
    """Layers whose attention keeps a KV cache."""


def model_stats(config: Shaped, dtype: str | torch.dtype = "bfloat16") -> ModelStats:
    blocks = sum(block_params(config, b) for b in config.block_configs)
    other = non_block_params(config)
    return ModelStats(
        num_params=blocks + other,
        block_params=blocks,
        non_block_params=other,
        kv_bytes_per_token=sum(kv_bytes_per_token(config, b, dtype) for b in config.block_configs),
        num_gqa_layers=sum(b.attention.kind.holds_cache for b in config.block_configs),
    )
