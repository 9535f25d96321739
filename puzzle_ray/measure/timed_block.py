"""What the fleet times: sub-blocks (an attention or an FFN alone) and the non-block part of the model.

A library variant is an (attention, FFN) pair; its cost is the sum of its two sub-blocks' costs, each timed
once as a block whose other half is a no-op. That measures 2k sub-blocks instead of k^2 pairs, identical
sub-blocks in different layers share one measurement, and decoupled variants compose (the cost-model
benchmark shows the sums reproduce whole-model timings).

The non-block part is the whole model with every layer a no-op: embeddings, final norm, LM head, the mask
and RoPE set-up and the per-layer dispatch of an empty layer. A block's differential cost is what it adds on
top of that, so  model cost = non-block + sum of its blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from ..arch.config import PuzzleConfig
from ..arch.stats import attention_params, dtype_bytes, ffn_params, kv_bytes_per_token, non_block_params
from ..configs import content_hash

NO_OP_BLOCK = BlockConfig(AttentionConfig(no_op=True), FFNConfig(no_op=True))
MIB = 2**20


def attention_unit(block: BlockConfig) -> BlockConfig:
    return BlockConfig(block.attention, FFNConfig(no_op=True))


def ffn_unit(block: BlockConfig) -> BlockConfig:
    return BlockConfig(AttentionConfig(no_op=True), block.ffn)


@dataclass(frozen=True)
class TimedBlock:
    """One timed thing: a block (usually a sub-block: one half no-op) or, with `block=None`, the non-block part."""

    block: BlockConfig | None

    @property
    def is_non_block(self) -> bool:
        return self.block is None

    @property
    def is_no_op(self) -> bool:
        """Costs nothing by construction: never timed."""
        return self.block == NO_OP_BLOCK

    def label(self, parent: PuzzleConfig) -> str:
        if self.block is None:
            return "non_block"
        att, ffn = self.block.describe(parent.num_attention_heads)  # e.g. ('gqa kv=2', 'swiglu 1024')
        parts = [
            f"attention {att}" if self.block.attention.kind.has_weights else "",
            f"ffn {ffn}" if self.block.ffn.kind.has_weights else "",
        ]
        return " + ".join(p for p in parts if p) or "no_op"

    def shape(self, parent: PuzzleConfig) -> dict[str, Any]:
        """Everything about the parent that changes this unit's runtime (weights values do not)."""
        common = {
            "hidden_size": parent.hidden_size,
            "attn_implementation": parent._attn_implementation or "sdpa",
        }
        if self.block is None:
            return {
                **common,
                "vocab_size": parent.vocab_size,
                "num_hidden_layers": parent.num_hidden_layers,
                "tie_word_embeddings": parent.tie_word_embeddings,
                "num_attention_heads": parent.num_attention_heads,
                "head_dim": parent.head_dim,
            }
        shape = {**common, "block": self.block.to_dict(parent.hidden_size)}
        shape.update(self.block.attention.kind.timing_shape(parent))
        shape.update(self.block.ffn.kind.timing_shape(parent))
        return shape

    def key(self, parent: PuzzleConfig) -> str:
        """Identity of the unit's shape: equal blocks of different layers (or libraries) share it."""
        return content_hash(self.shape(parent))

    # -- exact memory accounting (from puzzle_ray.arch.stats) ---------------------------------------------
    def num_params(self, parent: PuzzleConfig) -> int:
        if self.block is None:
            return non_block_params(parent)
        return attention_params(parent, self.block) + ffn_params(parent, self.block)

    def kv_bytes_per_token(self, parent: PuzzleConfig, dtype: str) -> int:
        return 0 if self.block is None else kv_bytes_per_token(parent, self.block, dtype)

    def memory_mib(self, parent: PuzzleConfig, dtype: str, batch_size: int, total_len: int) -> float:
        """Parameters plus `batch_size` x `total_len` tokens of KV cache, at `dtype` (the library contract)."""
        kv = batch_size * total_len * self.kv_bytes_per_token(parent, dtype)
        return (self.num_params(parent) * dtype_bytes(dtype) + kv) / MIB

    def peak_bytes_estimate(
        self, parent: PuzzleConfig, dtype: str, batch_size: int, prefill_len: int, total_len: int, depth: int
    ) -> int:
        """Generous estimate of what timing this unit in a stack of `depth` copies needs on the device:
        weights, KV caches (twice: decode concatenates into a new tensor), and prefill activations."""
        b = dtype_bytes(dtype)
        h, tokens = parent.hidden_size, batch_size * prefill_len
        if self.block is None:
            # logits of the last position only (logits_to_keep=1), hidden states of every prompt token
            return self.num_params(parent) * b + tokens * h * b * 4 + batch_size * parent.vocab_size * 4
        a, f = self.block.attention, self.block.ffn
        widest = max(h, a.kind.activation_width(parent, a), f.kind.activation_width(parent, f))
        weights = depth * self.num_params(parent) * b
        kv = 2 * depth * batch_size * total_len * self.kv_bytes_per_token(parent, dtype)
        activations = tokens * (4 * h + widest) * b
        if a.kind.holds_cache and parent._attn_implementation == "eager":
            activations += 2 * batch_size * parent.num_attention_heads * prefill_len * total_len * b  # scores + probs
        return weights + kv + activations


def flush_bytes(parent: PuzzleConfig, dtype: str, config) -> int:
    """The weight traffic a stack must generate to leave the caches: min(min_stack_mib, parent's blocks)."""
    parent_blocks = sum(attention_params(parent, blk) + ffn_params(parent, blk) for blk in parent.block_configs)
    return int(min(config.min_stack_mib * MIB, parent_blocks * dtype_bytes(dtype)))


def stack_depth_for(unit: TimedBlock, parent: PuzzleConfig, dtype: str, config) -> int:
    """Copies of `unit` in its timing stack (see `MeasureConfig.min_stack_mib`)."""
    if unit.block is None or config.min_stack_mib is None:
        return config.stack_depth
    depth = math.ceil(flush_bytes(parent, dtype, config) / max(1, unit.num_params(parent) * dtype_bytes(dtype)))
    return max(config.stack_depth, min(config.max_stack_depth, depth))


def sub_blocks(block: BlockConfig) -> tuple[TimedBlock, TimedBlock]:
    """The attention-only and FFN-only units whose costs add up to `block`'s."""
    return TimedBlock(attention_unit(block)), TimedBlock(ffn_unit(block))
