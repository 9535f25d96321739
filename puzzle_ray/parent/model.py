"""The embedded parent's architecture: a homogeneous `PuzzleForCausalLM` (Llama blocks: GQA, SwiGLU, RoPE)."""

from __future__ import annotations

import torch

from ..arch import PuzzleConfig, PuzzleForCausalLM
from .config import ParentModelConfig


def embedded_puzzle_config(
    cfg: ParentModelConfig,
    vocab_size: int,
    bos_token_id: int | None = None,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> PuzzleConfig:
    """The embedded parent's config, every layer the same block: the one builder, so that the workflow's plan
    (which has no tokenizer yet: configured vocabulary, no special tokens) sees the model that will be trained."""
    config = PuzzleConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
    )
    config._attn_implementation = "sdpa"
    return config


def parent_puzzle_config(cfg: ParentModelConfig, tokenizer) -> PuzzleConfig:
    """`embedded_puzzle_config` with the vocabulary and special tokens of the trained tokenizer."""
    ids = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    return embedded_puzzle_config(cfg, len(tokenizer), *ids)


def build_parent_model(cfg: ParentModelConfig, tokenizer, seed: int) -> PuzzleForCausalLM:
    """A freshly initialised parent (fp32 weights; training may autocast to bf16)."""
    torch.manual_seed(seed)
    return PuzzleForCausalLM(parent_puzzle_config(cfg, tokenizer))
