"""Depth pruning (ShortGPT-style): remove whole layers, least block influence first, until the target is met.

A removed layer is a no-op attention and a no-op FFN (no weights, the residual stream passes through); the
other layers keep the parent's block and weights. Block influence is measured once on the parent
(`calibration.calibrate_parent`), as in ShortGPT, not re-measured after each removal.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from .costs import CostModel

REMOVED = BlockConfig(AttentionConfig(no_op=True), FFNConfig(no_op=True))


@dataclass(frozen=True)
class DepthChoice:
    removed: tuple[int, ...]
    """Removed layers, in the order they were removed."""
    blocks: tuple[BlockConfig, ...]
    predicted_speedup: float

    def describe(self, num_layers: int) -> str:
        return f"removed {len(self.removed)}/{num_layers} layers: {sorted(self.removed)}"


def choose_depth(influence: list[float], costs: CostModel, target: float) -> DepthChoice | None:
    """Remove layers in increasing block influence (ties: the later layer first) until the predicted decode
    time meets `target`; None if even removing every layer does not."""
    parent = list(costs.parent.block_configs)
    if len(influence) != len(parent):
        raise ValueError(f"block influence for {len(influence)} layers, the parent has {len(parent)}")
    budget = costs.budget(target)
    order = sorted(range(len(parent)), key=lambda i: (influence[i], -i))
    blocks, removed = parent, []
    for i in [None] + order:
        if i is not None:
            blocks = blocks[:i] + [REMOVED] + blocks[i + 1 :]
            removed.append(i)
        if costs.total(blocks) <= budget:
            return DepthChoice(tuple(removed), tuple(blocks), costs.speedup(blocks))
    return None
