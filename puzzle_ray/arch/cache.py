"""A KV cache in which each layer holds exactly what it needs.

Each attention kind says what its layer holds (`cache_layer`): GQA a `DynamicLayer` (its own KV-head count,
shape (B, kv_heads, T, head_dim)); no-op and linear attention a `DummyLayer` that stores nothing. Layer i of
the cache is layer i of the model, so `cache.layers[i].keys` is directly inspectable.
"""

from __future__ import annotations

from transformers.cache_utils import DynamicCache

from .config import PuzzleConfig


class PuzzleCache(DynamicCache):
    def __init__(self, config: PuzzleConfig):
        layers = [b.attention.kind.cache_layer() for b in config.block_configs]
        # DynamicCache(config=...) would give every layer a KV slot; build ours instead.
        super(DynamicCache, self).__init__(layers=layers)
        self.has_attention = any(b.attention.kind.holds_cache for b in config.block_configs)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        if not self.has_attention:
            return 0  # no layer looks at the past: positions are irrelevant, nothing is cached
        return super().get_seq_length(layer_idx)

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        if not self.has_attention:
            return query_length, 0
        return super().get_mask_sizes(query_length, layer_idx)
