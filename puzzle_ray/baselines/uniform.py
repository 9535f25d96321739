"""Uniform width pruning (Minitron-style): one FFN width and one KV-head count for every layer.

Candidates are every KV-head count that divides the query heads (up to the parent's) crossed with every FFN
width that is a multiple of `round_to` (up to the parent's). The choice is the largest child (most block
parameters; on a tie, the slower one, i.e. nearer the budget) whose predicted decode time meets the target.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from ..arch.config import PuzzleConfig
from ..arch.stats import block_params
from .costs import CostModel


class UnsupportedParentError(ValueError):
    """A parent the baseline cannot prune (e.g. heterogeneous blocks for a uniform method)."""


def homogeneous_block(parent: PuzzleConfig) -> BlockConfig:
    """The parent's one block (GQA + SwiGLU in every layer), or an error naming the first differing layer."""
    first = parent.block_configs[0].resolve(parent.hidden_size)
    for i, block in enumerate(parent.block_configs):
        if block.resolve(parent.hidden_size) != first:
            raise UnsupportedParentError(f"uniform pruning needs identical parent blocks; "
                                         f"layer {i} differs from layer 0")
    if not (first.attention.kind.resizable and first.ffn.kind.resizable):
        raise UnsupportedParentError("uniform pruning needs a parent with GQA attention and SwiGLU FFNs")
    return first


def uniform_candidates(parent: PuzzleConfig, round_to: int) -> list[BlockConfig]:
    """Every (KV heads, FFN width) block of the uniform grid, the parent's own block included."""
    if round_to <= 0:
        raise ValueError(f"round_to={round_to} must be positive")
    block = homogeneous_block(parent)
    heads = parent.num_attention_heads
    kv_parent = block.attention.num_kv_heads(heads)
    full = block.ffn.intermediate_size
    widths = sorted({w for w in range(round_to, full + 1, round_to)} | {full})
    kvs = [kv for kv in range(1, kv_parent + 1) if heads % kv == 0]
    return [BlockConfig(AttentionConfig(n_heads_in_group=heads // kv), FFNConfig(intermediate_size=w))
            for kv in kvs for w in widths]


@dataclass(frozen=True)
class UniformChoice:
    block: BlockConfig
    """The block of every layer."""
    predicted_speedup: float

    def describe(self, num_attention_heads: int) -> str:
        att, ffn = self.block.describe(num_attention_heads)
        return f"every layer: attention {att}, FFN {ffn}"


def choose_uniform(costs: CostModel, candidates: list[BlockConfig], target: float) -> UniformChoice | None:
    """The largest uniform child meeting `target` (None when no candidate does)."""
    layers = costs.library.num_layers
    budget = costs.budget(target)
    totals = {b: costs.total([b] * layers) for b in candidates}
    meeting = [b for b in candidates if totals[b] <= budget]
    if not meeting:
        return None
    best = max(meeting, key=lambda b: (block_params(costs.parent, b), totals[b]))
    return UniformChoice(best, costs.parent_total / totals[best])


def fastest_speedup(costs: CostModel, candidates: list[BlockConfig]) -> float:
    """The best predicted speed-up any uniform candidate reaches (what the grid can do at all)."""
    return max(costs.speedup([b] * costs.library.num_layers) for b in candidates)
