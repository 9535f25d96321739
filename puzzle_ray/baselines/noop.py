"""The paper's no-op-only search space: every layer keeps the parent's attention and FFN or drops either one.

The same library, scores, costs and MIP as Puzzle, restricted to entries with no trained weights (each half is
the parent's own sub-block or nothing), so the method needs no BLD at all: it isolates what the library's
alternative blocks add over pure removal.
"""

from __future__ import annotations

from ..arch.blocks import BlockConfig
from ..library.record import Library, LibraryError
from ..solve.parent import parent_variants


def _noop_or_parent(block: BlockConfig | None, parent: BlockConfig) -> bool:
    if block is None:
        return False
    return ((block.attention == parent.attention or block.attention.no_op)
            and (block.ffn == parent.ffn or block.ffn.no_op))


def noop_only(library: Library) -> Library:
    """The library with, in every layer, only the parent's block and its attention-, FFN- or block-removed forms."""
    parents = parent_variants(library)
    layers = []
    for i, (layer, parent_name) in enumerate(zip(library.layers, parents)):
        if parent_name is None:
            raise LibraryError(f"layer_{i}: no variant is marked as the parent's, so no-op-only has no base")
        parent = layer[parent_name].block_config
        layers.append({n: v for n, v in layer.items() if _noop_or_parent(v.block_config, parent)})
    return Library(layers, library.meta)
