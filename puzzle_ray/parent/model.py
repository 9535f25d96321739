"""The embedded parent's architecture: a homogeneous `PuzzleForCausalLM` (Llama blocks: GQA, SwiGLU, RoPE)."""

from __future__ import annotations

import torch

from ..arch import PuzzleConfig, PuzzleForCausalLM
from .config import ParentModelConfig


def parent_puzzle_config(cfg: ParentModelConfig, tokenizer) -> PuzzleConfig:
    """Every layer the same block; vocabulary and special tokens from the tokenizer."""
    config = PuzzleConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = "sdpa"
    return config


def build_parent_model(cfg: ParentModelConfig, tokenizer, seed: int) -> PuzzleForCausalLM:
    """A freshly initialised parent (fp32 weights; training may autocast to bf16)."""
    torch.manual_seed(seed)
    return PuzzleForCausalLM(parent_puzzle_config(cfg, tokenizer))
