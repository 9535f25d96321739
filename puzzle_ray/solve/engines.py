"""Engine-aware search (`search.engines`): which library variants a solution may use so that every listed
serving engine reads the child right (the table is `serving/matrix.py`)."""

from __future__ import annotations

from ..library.record import Library, LibraryError, layer_key
from ..serving.check import block_served, engine_list
from ..serving.matrix import MATRIX
from .parent import parent_variants


def served_variants(library: Library, engines) -> list[list[str]]:
    """Per layer, the names of the variants (attention x FFN combinations) that every engine of `engines` serves,
    so that any mix of them is served. Where an engine needs one KV-head count in every GQA layer (SGLang), GQA
    variants keep the parent's count. Raises `LibraryError` naming the layer where nothing is left, or a variant
    without a block config."""
    uniform_kv = any(not MATRIX[e]["mixed_kv_heads"].served for e in engines)
    parents = parent_variants(library) if uniform_kv else [None] * library.num_layers
    layers = []
    for i, layer in enumerate(library.layers):
        for name, variant in layer.items():
            if variant.block_config is None:
                raise LibraryError(
                    f"{layer_key(i)} / {name!r}: search.engines needs each variant's block config (a published "
                    "library needs num_attention_heads to map its stats to blocks)"
                )
        group = None
        if uniform_kv:
            if parents[i] is None:
                raise LibraryError(f"layer_{i}: search.engines={list(engines)} keeps the parent's KV-head count, "
                                   "but the library marks no variant as the parent's block")
            group = layer[parents[i]].block_config.attention.n_heads_in_group
        kept = [n for n, v in layer.items() if block_served(v.block_config, engines, i)
                and (group is None or v.block_config.attention.kind != "gqa"
                     or v.block_config.attention.n_heads_in_group == group)]
        if not kept:
            raise LibraryError(f"layer_{i}: no variant that {engine_list(engines)} serve "
                               f"(search.engines={list(engines)}; it has {', '.join(layer)})")
        layers.append(kept)
    return layers
