"""Which variant of each layer is the parent's own block, for limits given as a fraction of the parent.

In order of trust:
1. a variant marked as the parent's (`Variant.is_parent`: our libraries set `bld.is_parent`, a top-level
   `is_parent` also counts);
2. a variant whose block config equals the parent's block (`meta.parent_config["block_configs"]`);
3. the published naming, 'attention = ... (parent * 100%) && ffn = ... (parent * 100%)'.
Without a parent variant the parent's figures can still come from `meta.parent_block_stats` (the published
`parent_block_stats.json`: one block's stats, the same for every layer).
"""

from __future__ import annotations

from typing import Any

from ..arch.blocks import BlockConfig
from ..library.record import Library, LibraryError


def parent_variants(library: Library) -> list[str | None]:
    """Per layer, the name of the variant that is the parent's block, or None where none is recognisable."""
    parent_blocks = _parent_blocks(library)
    out: list[str | None] = []
    for i, layer in enumerate(library.layers):
        marked = [n for n, v in layer.items() if v.is_parent]
        if not marked and parent_blocks is not None:
            marked = [n for n, v in layer.items() if _same_block(v.block_config, parent_blocks[i], library)]
        if not marked:
            marked = [n for n in layer if n.count("parent * 100%") == 2]
        if len(marked) > 1:
            raise LibraryError(f"layer_{i}: several variants are marked as the parent's block: {marked}")
        out.append(marked[0] if marked else None)
    return out


def _parent_blocks(library: Library) -> list[BlockConfig] | None:
    config: Any = library.meta.parent_config or {}
    blocks = config.get("block_configs") if isinstance(config, dict) else None
    if not blocks or len(blocks) != library.num_layers:
        return None
    heads = library.meta.num_attention_heads or config.get("num_attention_heads")
    return [BlockConfig.from_dict(b, i, heads) for i, b in enumerate(blocks)]


def _same_block(a: BlockConfig | None, b: BlockConfig, library: Library) -> bool:
    if a is None:
        return False
    hidden = library.meta.hidden_size
    return a.resolve(hidden) == b.resolve(hidden) if hidden else a == b
