"""Tiny random models for tests, with a large initializer_range so that wrong masks or positions show."""

from __future__ import annotations

from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from puzzle_ray.arch import PuzzleConfig, PuzzleForCausalLM

COMMON = dict(
    vocab_size=128,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    initializer_range=0.3,
)


def tiny_llama(**kw) -> LlamaForCausalLM:
    return LlamaForCausalLM(LlamaConfig(**{**COMMON, **kw})).eval()


def tiny_qwen2(**kw) -> Qwen2ForCausalLM:
    cfg = dict(COMMON, tie_word_embeddings=True, bos_token_id=None)
    return Qwen2ForCausalLM(Qwen2Config(**{**cfg, **kw})).eval()


def tiny_mistral(**kw) -> MistralForCausalLM:
    return MistralForCausalLM(MistralConfig(**{**COMMON, "sliding_window": None, **kw})).eval()


MIXED_BLOCKS = [
    {"attention": {"no_op": True}, "ffn": {"intermediate_size": 64}},
    {"attention": {"n_heads_in_group": 2}, "ffn": {"replace_with_linear": True}},
    {"attention": {"replace_with_linear": True}, "ffn": {"no_op": True}},
    {"attention": {"n_heads_in_group": 4}, "ffn": {"intermediate_size": 32}},
    {"attention": {"n_heads_in_group": 1}, "ffn": {"no_op": True}},
]


def tiny_mixed_child(**kw) -> PuzzleForCausalLM:
    """A child with every block kind: no-op and linear attention, GQA with 1/2/4 KV heads, narrow/linear/no-op FFN."""
    cfg = dict(
        vocab_size=128,
        hidden_size=64,
        num_hidden_layers=len(MIXED_BLOCKS),
        num_attention_heads=4,
        block_configs=MIXED_BLOCKS,
        max_position_embeddings=256,
        initializer_range=0.3,
    )
    return PuzzleForCausalLM(PuzzleConfig(**{**cfg, **kw})).eval()
