"""The search space: which attention and FFN variants every layer may use.

    attention: [4, 2, 1, linear, no_op]        # KV-head counts, or a replacement
    ffn:       [1.0, 0.5, 0.25, 768, linear, no_op]   # ratios of the parent's width (floats), absolute widths (ints)
    round_to:  256                             # ratio widths are rounded to a multiple of this
    overrides: {0: {attention: [4]}}           # per-layer replacements of either list

The parent's own attention and FFN are always in the space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from pydantic import StrictFloat, StrictInt, field_validator

from ..arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from ..arch.config import PuzzleConfig
from ..configs import StrictConfig

AttentionChoice = Union[StrictInt, Literal["linear", "no_op"]]
FFNChoice = Union[StrictInt, StrictFloat, Literal["linear", "no_op"]]


class LayerOverride(StrictConfig):
    attention: list[AttentionChoice] | None = None
    """Replaces the global attention list for this layer."""
    ffn: list[FFNChoice] | None = None
    """Replaces the global FFN list for this layer."""


class VariantSpace(StrictConfig):
    attention: list[AttentionChoice] = [1, "linear", "no_op"]
    """Attention variants: KV-head counts (must divide the query heads), `linear` or `no_op`."""
    ffn: list[FFNChoice] = [0.5, 0.25, "linear", "no_op"]
    """FFN variants: ratios of the parent's width (floats in (0, 1]), absolute widths (ints), `linear`, `no_op`."""
    round_to: int = 256
    """Ratio widths are rounded to a multiple of this (256 keeps `ffn_mult` exact for the inference engines)."""
    overrides: dict[int, LayerOverride] = {}
    """Per-layer replacements of the lists above, by layer index."""

    @field_validator("attention", "ffn")
    @classmethod
    def _not_empty(cls, value, info):
        if not value:
            raise ValueError(f"{info.field_name}: the variant list is empty")
        return value

    @field_validator("round_to")
    @classmethod
    def _positive(cls, value):
        if value <= 0:
            raise ValueError(f"round_to={value} must be positive")
        return value


@dataclass(frozen=True)
class SubVariant:
    """One attention or FFN alternative of one layer."""

    role: Literal["attention", "ffn"]
    """Which sub-block it replaces (its kind is `config.kind`)."""
    name: str
    """e.g. 'kv2', 'linear', 'no_op', '768' (the kind's short label)"""
    config: AttentionConfig | FFNConfig
    is_parent: bool

    @property
    def trainable(self) -> bool:
        return not self.is_parent and self.config.kind.has_weights


@dataclass(frozen=True)
class LayerSpace:
    attention: list[SubVariant]
    ffn: list[SubVariant]


def trained_units(spaces: list[LayerSpace], mode: str = "decoupled") -> int:
    """How many BLD units a space trains: sub-blocks (decoupled) or pairs with a trainable half (coupled)."""
    if mode == "decoupled":
        return sum(v.trainable for s in spaces for v in s.attention + s.ffn)
    return sum(a.trainable or f.trainable for s in spaces for a in s.attention for f in s.ffn)


def attention_variant(choice: AttentionChoice, parent: BlockConfig, heads: int, where: str) -> SubVariant:
    if isinstance(choice, str):  # a kind without a size
        cfg = AttentionConfig.of_kind(choice)
        return SubVariant("attention", choice, cfg, parent.attention == cfg)
    if choice <= 0 or heads % choice:
        raise ValueError(f"{where}: {choice} KV heads does not divide the parent's {heads} query heads")
    cfg = AttentionConfig(n_heads_in_group=heads // choice)
    return SubVariant("attention", _label(cfg, heads), cfg, parent.attention == cfg)


def ffn_variant(choice: FFNChoice, parent: BlockConfig, round_to: int, where: str) -> SubVariant:
    if isinstance(choice, str):  # a kind without a size
        cfg = FFNConfig.of_kind(choice)
        return SubVariant("ffn", choice, cfg, parent.ffn == cfg)
    full = parent.ffn.kind.size(parent.ffn)  # the parent's SwiGLU width (None for other kinds)
    if isinstance(choice, float):
        if full is None:
            raise ValueError(f"{where}: a width ratio ({choice}) needs a parent SwiGLU FFN")
        if not 0 < choice <= 1:
            raise ValueError(f"{where}: width ratio {choice} must be in (0, 1]")
        size = full if choice == 1.0 else max(round_to, round(choice * full / round_to) * round_to)
    else:
        size = choice
    if size <= 0:
        raise ValueError(f"{where}: FFN width {size} must be positive")
    if full is not None and size > full:
        raise ValueError(f"{where}: FFN width {size} is larger than the parent's {full}")
    cfg = FFNConfig(intermediate_size=min(size, full) if full else size)
    return SubVariant("ffn", _label(cfg, None), cfg, parent.ffn == cfg)


def _dedupe_with_parent(variants: list[SubVariant], parent: SubVariant) -> list[SubVariant]:
    """Parent first, then the others in order, each config once."""
    out, seen = [parent], {parent.config}
    for v in variants:
        if v.config not in seen:
            out.append(v)
            seen.add(v.config)
    return out


def expand(space: VariantSpace, parent: PuzzleConfig) -> list[LayerSpace]:
    """Per layer, the attention and FFN sub-variants (parent's own first). Raises naming the bad value."""
    for idx in space.overrides:
        if not 0 <= idx < parent.num_hidden_layers:
            raise ValueError(
                f"search_space.overrides: layer {idx} does not exist (parent has {parent.num_hidden_layers})"
            )
    heads = parent.num_attention_heads
    layers = []
    for i, block in enumerate(parent.block_configs):
        override = space.overrides.get(i)
        # a bad value is named where it was written: the layer's override, or the global list
        own_att, own_ffn = (override and override.attention is not None), (override and override.ffn is not None)
        att_choices, att_where = ((override.attention, f"search_space.overrides[{i}].attention") if own_att
                                  else (space.attention, "search_space.attention"))
        ffn_choices, ffn_where = ((override.ffn, f"search_space.overrides[{i}].ffn") if own_ffn
                                  else (space.ffn, "search_space.ffn"))
        att = [attention_variant(c, block, heads, att_where) for c in att_choices]
        ffn = [ffn_variant(c, block, space.round_to, ffn_where) for c in ffn_choices]
        parent_att = SubVariant("attention", _label(block.attention, heads), block.attention, True)
        parent_ffn = SubVariant("ffn", _label(block.ffn, heads), block.ffn, True)
        layers.append(LayerSpace(_dedupe_with_parent(att, parent_att), _dedupe_with_parent(ffn, parent_ffn)))
    return layers


def _label(sub: AttentionConfig | FFNConfig, heads: int | None) -> str:
    """A variant's name: its kind's short label, the same part as in the library's variant names."""
    return sub.kind.short_label(sub, heads)
