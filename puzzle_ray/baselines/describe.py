"""A child's architecture in one short line, for tables: 'kv2/768 kv1/384 -/768 ...' (attention/FFN per layer)."""

from __future__ import annotations

from collections.abc import Sequence

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..arch.kinds import block_labels


def describe_block(block: BlockConfig, num_attention_heads: int) -> str:
    """'kv2/768', '-/lin': each kind's tag label."""
    return "/".join(block_labels(block, num_attention_heads, "tag"))


def describe_blocks(blocks: Sequence[BlockConfig], parent: PuzzleConfig) -> str:
    """Per layer 'attention/FFN' ('-' no-op, 'lin' linear), then how many sub-blocks differ from the parent's."""
    hidden, heads = parent.hidden_size, parent.num_attention_heads
    parts = [describe_block(b.resolve(hidden), heads) for b in blocks]
    changed = sum(b.resolve(hidden).attention != p.resolve(hidden).attention
                  for b, p in zip(blocks, parent.block_configs))
    changed += sum(b.resolve(hidden).ffn != p.resolve(hidden).ffn for b, p in zip(blocks, parent.block_configs))
    return f"`{' '.join(parts)}` ({changed} of {2 * len(blocks)} sub-blocks changed)"
