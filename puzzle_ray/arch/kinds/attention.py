"""Attention kinds: GQA with its own KV-head count, one H x H linear map, or nothing (no-op).

The published JSON part is `{"n_heads_in_group": ..., "no_op": ..., "replace_with_linear": ...}`. The module
classes live in `arch/modeling.py` (imported when building, since modeling imports the block configs).
"""

from __future__ import annotations

from typing import Any

from .base import BlockConfigError, SubblockKind, register


class _AttentionKind(SubblockKind):
    role = "attention"

    def write(self, cfg, hidden_size):
        return {"n_heads_in_group": None}

    def params(self, config, cfg) -> int:
        h = config.hidden_size
        return h * h + h  # the H x H map and the input norm


@register
class NoOpAttention(_AttentionKind):
    """No attention at all: no weights, no norm, the hidden state passes through."""

    name, flag, tag, has_weights = "no_op", "no_op", "-", False

    def params(self, config, cfg) -> int:
        return 0


@register
class LinearAttentionKind(_AttentionKind):
    """Attention replaced by one H x H map (each token attends only to itself), initialised either as the least-
    squares map from the parent's normalised input to its output on calibration activations ('lstsq', the best
    linear map by construction) or as W_o E W_v ('product'; E repeats KV heads to query heads)."""

    name, flag, tag, linear_map = "linear", "replace_with_linear", "lin", True

    def build(self, config, block, layer_idx):
        from ..modeling import LinearAttention

        return LinearAttention(config)

    def init_from_parent(self, new, old, calib, linear_init, layer_idx) -> None:
        from .fit import lstsq_map

        if hasattr(old, "linear_attn"):
            new.linear_attn.weight.copy_(old.linear_attn.weight)
        elif linear_init == "lstsq" and calib is not None and calib.attn_gram is not None:
            new.linear_attn.weight.copy_(lstsq_map(calib.attn_gram, calib.attn_cross))
        else:
            d, groups = old.head_dim, old.num_key_value_groups
            w_v = old.v_proj.weight.view(old.num_kv_heads, d, -1).repeat_interleave(groups, 0)
            new.linear_attn.weight.copy_(old.o_proj.weight @ w_v.reshape(-1, old.v_proj.in_features))  # (H, H)


@register
class GQA(_AttentionKind):
    """Grouped-query attention: `n_heads_in_group` query heads per KV head. Initialised from the parent by
    copying q and o (and the per-head q/k norms) and mean-pooling K and V over each group of merged KV heads."""

    name, fallback, holds_cache, resizable, needs_heads = "gqa", True, True, True, True
    keys = ("n_heads_in_group", "num_key_value_heads")

    def parse(self, data: dict, where: str, num_attention_heads: int | None = None) -> dict[str, Any]:
        n, kv = data.get("n_heads_in_group"), data.get("num_key_value_heads")
        if kv is not None and num_attention_heads is not None:  # some NVIDIA tooling writes it: must agree
            if n is None and kv > 0 and num_attention_heads % kv == 0:
                n = num_attention_heads // kv
            elif n is None or num_attention_heads // n != kv:
                raise BlockConfigError(f"{where}.num_key_value_heads={kv} disagrees with n_heads_in_group={n}")
        return {"n_heads_in_group": n}

    def write(self, cfg, hidden_size):
        return {"n_heads_in_group": cfg.n_heads_in_group}

    def validate(self, cfg, where, num_attention_heads=None) -> None:
        n = cfg.n_heads_in_group
        if n is None:
            raise BlockConfigError(f"{where}.n_heads_in_group is required for a GQA attention block")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise BlockConfigError(f"{where}.n_heads_in_group={n!r} must be a positive integer")
        if num_attention_heads % n:
            raise BlockConfigError(
                f"{where}.n_heads_in_group={n} does not divide the {num_attention_heads} attention heads"
            )

    def build(self, config, block, layer_idx):
        from ..modeling import GQAttention

        return GQAttention(config, block, layer_idx)

    def params(self, config, cfg) -> int:
        h = config.hidden_size
        q = config.num_attention_heads * config.head_dim
        kv = self.kv_heads(cfg, config.num_attention_heads) * config.head_dim
        qkv_bias = config.attention_bias or config.qkv_bias
        weights = h * q + 2 * h * kv + q * h
        biases = (q + 2 * kv if qkv_bias else 0) + (h if config.attention_bias else 0)
        qk_norms = 2 * config.head_dim if config.qk_norm else 0
        return weights + biases + qk_norms + h

    def kv_heads(self, cfg, num_attention_heads) -> int:
        return num_attention_heads // cfg.n_heads_in_group

    def cache_layer(self):
        from transformers.cache_utils import DynamicLayer

        return DynamicLayer()

    def size(self, cfg, num_attention_heads=None) -> int | None:
        return self.kv_heads(cfg, num_attention_heads)

    def activation_width(self, config, cfg) -> int:
        return 3 * config.num_attention_heads * config.head_dim

    def timing_shape(self, config) -> dict[str, Any]:
        shape = {
            "num_attention_heads": config.num_attention_heads,
            "head_dim": config.head_dim,
            "attention_bias": config.attention_bias,
            "qkv_bias": config.qkv_bias,
        }
        if config.qk_norm:
            shape["qk_norm"] = True
        return shape

    def short_label(self, cfg, num_attention_heads) -> str:
        return f"kv{self.kv_heads(cfg, num_attention_heads)}"

    def long_label(self, cfg, num_attention_heads) -> str:
        return f"gqa kv={self.kv_heads(cfg, num_attention_heads)}"

    def init_from_parent(self, new, old, calib, linear_init, layer_idx) -> None:
        from .fit import copy_module, pool_kv

        if not hasattr(old, "k_proj"):
            raise ValueError(f"layer {layer_idx}: cannot initialise GQA from a linear attention parent block")
        copy_module(new.q_proj, old.q_proj)
        copy_module(new.o_proj, old.o_proj)
        if hasattr(new, "q_norm"):  # per head_dim and shared by all heads: the same for any number of KV heads
            copy_module(new.q_norm, old.q_norm)
            copy_module(new.k_norm, old.k_norm)
        for name in ("k_proj", "v_proj"):
            pool_kv(getattr(new, name), getattr(old, name), old.num_kv_heads, new.num_kv_heads, old.head_dim)
