"""Exact parameter and KV-cache accounting from a config alone (no weights).

These formulas are the memory model of the search stage, so a test checks them against the parameters that
the model class actually allocates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .blocks import BlockConfig
from .config import PuzzleConfig

DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "bf16": 2, "float16": 2, "fp16": 2, "fp8": 1, "int8": 1}


def dtype_bytes(dtype: str | torch.dtype) -> int:
    if isinstance(dtype, torch.dtype):
        return dtype.itemsize
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"dtype={dtype!r}: expected one of {sorted(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def attention_params(config: PuzzleConfig, block: BlockConfig) -> int:
    """Weights of the attention sub-block, its input norm included (0 for no-op)."""
    h, a = config.hidden_size, block.attention
    if a.kind == "no_op":
        return 0
    if a.kind == "linear":
        return h * h + h
    q = config.num_attention_heads * config.head_dim
    kv = a.num_kv_heads(config.num_attention_heads) * config.head_dim
    qkv_bias = config.attention_bias or config.qkv_bias
    weights = h * q + 2 * h * kv + q * h
    biases = (q + 2 * kv if qkv_bias else 0) + (h if config.attention_bias else 0)
    return weights + biases + h


def ffn_params(config: PuzzleConfig, block: BlockConfig) -> int:
    """Weights of the FFN sub-block, its input norm included (0 for no-op)."""
    h, f = config.hidden_size, block.ffn
    if f.kind == "no_op":
        return 0
    if f.kind == "linear":
        return h * h + h
    i = f.intermediate_size
    return 3 * h * i + (2 * i + h if config.mlp_bias else 0) + h


def block_params(config: PuzzleConfig, block: BlockConfig) -> int:
    return attention_params(config, block) + ffn_params(config, block)


def kv_bytes_per_token(config: PuzzleConfig, block: BlockConfig, dtype: str | torch.dtype = "bfloat16") -> int:
    """KV-cache bytes one token adds in this layer: 2 (K and V) x kv_heads x head_dim x bytes; 0 without GQA."""
    kv_heads = block.attention.num_kv_heads(config.num_attention_heads)
    return 2 * kv_heads * config.head_dim * dtype_bytes(dtype)


def non_block_params(config: PuzzleConfig) -> int:
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


def model_stats(config: PuzzleConfig, dtype: str | torch.dtype = "bfloat16") -> ModelStats:
    blocks = sum(block_params(config, b) for b in config.block_configs)
    other = non_block_params(config)
    return ModelStats(
        num_params=blocks + other,
        block_params=blocks,
        non_block_params=other,
        kv_bytes_per_token=sum(kv_bytes_per_token(config, b, dtype) for b in config.block_configs),
        num_gqa_layers=sum(b.attention.kind == "gqa" for b in config.block_configs),
    )
