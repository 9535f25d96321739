"""What PCW needs from a causal LM, found once: cache keyword, position limit, cache layout, mask kinds.

Works for any transformers 5 decoder whose attention layers write a KV cache through `cache.update` (GPT-2,
Llama, Qwen2, Mistral, ...) and for `PuzzleForCausalLM`, whose no-op and linear attention layers hold no cache
(`DummyLayer`s of `PuzzleCache`).
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from puzzle_ray.arch import PuzzleCache, PuzzleConfig

from .masks import MaskKinds, build_masks

SUPPORTED_ATTENTION = ("eager", "sdpa")


class ModelAdapter:
    def __init__(self, model: PreTrainedModel):
        config = model.config
        impl = getattr(config, "_attn_implementation", None) or "eager"
        if impl not in SUPPORTED_ATTENTION:
            raise ValueError(
                f"attn_implementation={impl!r}: PCW needs explicit 4-D masks, supported with "
                f"{' or '.join(SUPPORTED_ATTENTION)} (load the model with attn_implementation='sdpa')"
            )
        if getattr(config, "is_encoder_decoder", False):
            raise ValueError(f"{type(model).__name__}: PCW needs a decoder-only causal LM")
        self.model = model
        self.config = config
        # The decoder without its LM head: encoding windows needs their caches, not (W, M, vocab) logits.
        self.base = getattr(model, model.base_model_prefix, None) or model
        # transformers 5 renamed `past_key_values` to `cache`; older 5.x releases only know the former.
        self.cache_keyword = cache_keyword(model)
        self.base_cache_keyword = cache_keyword(self.base)
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
        self.max_positions: int | None = int(limit) if limit else None
        self.kinds = MaskKinds.of(config)
        self.num_layers = config.num_hidden_layers

    @property
    def dtype(self) -> torch.dtype:
        return self.model.get_input_embeddings().weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def new_cache(self) -> Cache:
        """An empty cache with one plain layer per attention layer.

        Never sliding-window cache layers: they drop keys by cache index, and PCW's windows re-use positions.
        """
        if isinstance(self.config, PuzzleConfig):
            return PuzzleCache(self.config)
        return DynamicCache()

    def seeded_cache(self, keys: tuple, values: tuple, batch: int) -> Cache:
        """A new cache holding the given per-layer (1, kv_heads, L, D) tensors, viewed `batch` times.

        The tensors are expanded, not copied; the model's first `update` concatenates into new tensors, so the
        given ones are never written (transformers' dynamic caches grow by replacing their tensors).
        """
        cache = self.new_cache()
        for i, (k, v) in enumerate(zip(keys, values)):
            if len(cache.layers) <= i:
                cache.layers.append(DynamicLayer())
            if k is None:
                continue
            layer = cache.layers[i]
            layer.lazy_initialization(k, v)
            layer.keys = k.expand(batch, -1, -1, -1)
            layer.values = v.expand(batch, -1, -1, -1)
        return cache

    def check_positions(self, highest: int, what: str) -> None:
        if self.max_positions is not None and highest >= self.max_positions:
            raise ValueError(
                f"{what} needs position {highest}, past the model's limit (max_position_embeddings="
                f"{self.max_positions}: positions 0..{self.max_positions - 1})"
            )

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor,
        allowed: torch.Tensor,
        key_pos: torch.Tensor,
        cache: Cache | None,
        hidden_only: bool = False,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, V) of one forward with explicit positions and mask (hidden states (B, T, H) of the
        decoder without its LM head if `hidden_only`).

        input_ids, position_ids: (B, T); allowed: (B, T, K) bool over every key the layers will see (the cache's
        plus these T); key_pos: (B, K) their positions; bias: (B, K) added to the attended keys' scores. With
        `cache`, the new keys/values are appended to it.
        """
        mask = build_masks(allowed, position_ids, key_pos, self.kinds, self.dtype, bias)
        module, keyword = (self.base, self.base_cache_keyword) if hidden_only else (self.model, self.cache_keyword)
        kwargs = {keyword: cache, "use_cache": cache is not None}
        out = module(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, **kwargs)
        return out.last_hidden_state if hidden_only else out.logits


def cache_keyword(module: torch.nn.Module) -> str:
    params = inspect.signature(module.forward).parameters
    return "cache" if "cache" in params else "past_key_values"
