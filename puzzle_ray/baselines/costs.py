"""The one cost model every method is held to: Puzzle's MIP constraint, applied to any architecture.

    predicted decode_ms = non-block decode_ms + sum over layers of the chosen block's measured decode_ms

at the scenario's first batch size (the MIP's reference batch for `stats.decode_ms<=X*parent`). A target
speed-up S gives the budget parent_decode_ms / S. Baselines use blocks Puzzle's library may lack (uniform FFN
widths, whole-layer no-ops), so `cost_library` measures those with the same fleet, method and cache as the
measure stage: blocks the library already has are read from the cache, not timed again.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..library.record import Library, LibraryError, layer_key, variant_name
from ..measure.config import MeasureConfig, Scenario
from ..store import ArtifactStore


def cost_library(measured: Library, parent: PuzzleConfig, extra: Sequence[BlockConfig], scenario: Scenario,
                 config: MeasureConfig, store: ArtifactStore) -> Library:
    """`measured`'s blocks plus `extra` in every layer, all measured (cached units are not re-timed)."""
    from ..measure import measure_library, skeleton_library

    per_layer = []
    for i, layer in enumerate(measured.layers):
        blocks = {v.block_config.resolve(parent.hidden_size): None for v in layer.values()
                  if v.block_config is not None}
        blocks.update({b.resolve(parent.hidden_size): None for b in extra})
        if not blocks:
            raise LibraryError(f"{layer_key(i)}: no variant has a block config to measure")
        per_layer.append(list(blocks))
    return measure_library(skeleton_library(parent, per_layer), parent, scenario, config, store)


@dataclass
class CostModel:
    """Predicted costs of per-layer block choices from a measured library."""

    library: Library
    parent: PuzzleConfig
    stat: str = "decode_ms"
    """The summed per-block stat (decode_ms: one decode step of the whole batch)."""

    def __post_init__(self):
        scenario = self.library.meta.scenario
        if not scenario or self.library.meta.non_block is None:
            raise LibraryError("the cost library has no measured stats (run the measure stage first)")
        self.batch_size = int(scenario["batch_sizes"][0])
        self._by_block = [
            {v.block_config.resolve(self.parent.hidden_size): v for v in layer.values() if v.block_config is not None}
            for layer in self.library.layers
        ]
        non_block = self.library.meta.non_block
        self.non_block = float({**non_block, **non_block.get("by_batch", {}).get(str(self.batch_size), {})}[self.stat])
        self.parent_total = self.total(self.parent.block_configs)

    def block_cost(self, layer: int, block: BlockConfig) -> float:
        variant = self._by_block[layer].get(block.resolve(self.parent.hidden_size))
        if variant is None:
            name = variant_name(block, self.parent.num_attention_heads)
            raise LibraryError(f"{layer_key(layer)}: {name!r} was not measured (not in the cost library)")
        value = variant.stats_for_batch(self.batch_size).get(self.stat)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LibraryError(f"{layer_key(layer)} / {variant.name!r}: no finite stats.{self.stat}")
        return float(value)

    def total(self, blocks: Sequence[BlockConfig]) -> float:
        """The whole model's predicted figure for one block per layer."""
        if len(blocks) != self.library.num_layers:
            raise LibraryError(f"{len(blocks)} blocks for a {self.library.num_layers}-layer cost library")
        return self.non_block + sum(self.block_cost(i, b) for i, b in enumerate(blocks))

    def budget(self, speedup: float) -> float:
        """The largest total that meets a target speed-up (throughput = batch / decode time)."""
        if speedup <= 0:
            raise ValueError(f"target speed-up {speedup} must be positive")
        return self.parent_total / speedup

    def speedup(self, blocks: Sequence[BlockConfig]) -> float:
        """Predicted decode-throughput speed-up over the parent."""
        return self.parent_total / self.total(blocks)

    def max_speedup(self) -> float:
        """The fastest architecture the cost library admits (every layer at its cheapest measured block)."""
        cheapest = [min(self.block_cost(i, b) for b in layer) for i, layer in enumerate(self._by_block)]
        return self.parent_total / (self.non_block + sum(cheapest))
