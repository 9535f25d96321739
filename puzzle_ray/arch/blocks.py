"""Per-layer block configurations in the published Puzzle (`nemotron-nas`) format.

A Puzzle child is a decoder whose every layer has its own attention and FFN variant:

    attention: GQA with its own KV-head count (`n_heads_in_group` = query heads / KV heads),
               `replace_with_linear` (one H x H matrix), or `no_op` (nothing at all);
    ffn:       SwiGLU with its own intermediate size (`ffn_mult` or `intermediate_size`),
               `replace_with_linear`, or `no_op`.

These dataclasses are the contract between search, realisation, export and every inference engine,
so they speak the published JSON layout exactly (`to_dict` / `from_dict`). They hold the published fields
only; what each variant means (its JSON part, module, parameters, labels) is its kind's (`arch/kinds/`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from .kinds import (
    BlockConfigError,
    SubblockKind,
    accepted_keys,
    block_labels,
    check_exclusive,
    kind_in,
    kind_named,
    kind_of,
    write_part,
)
from .kinds.ffn import ENGINE_ROUNDING, engine_intermediate_size, ffn_mult_for

__all__ = [
    "ENGINE_ROUNDING",
    "AttentionConfig",
    "BlockConfig",
    "BlockConfigError",
    "FFNConfig",
    "engine_intermediate_size",
    "ffn_mult_for",
    "parent_block",
    "resolve_block_configs",
]

# Keys of NVIDIA's block configs that name features we do not implement, with their default values. NVIDIA's
# DeciLM code writes every one of them into each sub-block of a checkpoint it saves, so a null / false / default
# value is accepted; anything else is rejected rather than silently ignored.
_UNSUPPORTED_ATTENTION_KEYS = {
    "window_length": None,
    "num_sink_tokens": None,
    "sparsify": None,
    "unshifted_sink": False,
    "use_prefill_window_in_sink_attention": False,
    "llama4": None,
    "mamba": None,
    "weights_precision": "bf16",
}
_UNSUPPORTED_FFN_KEYS = {
    "sparsify": None, "moe": None, "gated": True, "hidden_act": "silu", "weights_precision": "bf16",
}
_UNSUPPORTED_BLOCK_KEYS = {"parallel_blocks": None, "weights_precision": "bf16"}


def _reject_unsupported(where: str, data: dict, allowed: set[str], defaults: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in allowed:
            continue
        if key in defaults:
            default = defaults[key]
            # null means "not set" (the default); false switches a feature off, unless the default is on
            # (`gated: false` would be a plain, non-SwiGLU FFN)
            if value is None or value == default or (value is False and default in (None, False)):
                continue
            raise BlockConfigError(f"{where}.{key}={value!r}: this feature is not supported by puzzle-ray")
        if value in (None, False):
            continue  # unknown but switched off: harmless
        raise BlockConfigError(f"{where}.{key}={value!r}: unknown block-config field")


class _SubblockConfig:
    """What attention and FFN configs share: their kind, and JSON through it."""

    ROLE: ClassVar[str]
    UNSUPPORTED: ClassVar[dict[str, Any]]

    @property
    def kind(self) -> SubblockKind:
        return kind_of(self)

    @classmethod
    def of_kind(cls, name: str):
        """The config of a kind that takes no size ('linear', 'no_op')."""
        return cls(**kind_named(cls.ROLE, name).fields())

    @classmethod
    def _parse(cls, data: dict, where: str, num_attention_heads: int | None = None):
        data = dict(data)
        _reject_unsupported(where, data, accepted_keys(cls.ROLE), cls.UNSUPPORTED)
        kind = kind_in(cls.ROLE, data, where)
        flags = {} if kind.flag is None else {kind.flag: True}
        return cls(**kind.parse(data, where, num_attention_heads), **flags)


@dataclass(frozen=True)
class AttentionConfig(_SubblockConfig):
    """Attention sub-block of one layer. Exactly one of: GQA (`n_heads_in_group`), linear, no-op."""

    ROLE: ClassVar[str] = "attention"
    UNSUPPORTED: ClassVar[dict[str, Any]] = _UNSUPPORTED_ATTENTION_KEYS

    n_heads_in_group: int | None = None
    """Query heads per KV head (GQA group size); KV heads = attention heads // n_heads_in_group."""
    replace_with_linear: bool = False
    """Replace attention by one H x H linear map (each token attends only to itself)."""
    no_op: bool = False
    """No attention at all: no weights, no norm, the hidden state passes through."""

    def num_kv_heads(self, num_attention_heads: int) -> int:
        """KV heads of a GQA sub-block, 0 for kinds that hold no KV cache."""
        return self.kind.kv_heads(self, num_attention_heads)

    def validate(self, where: str, num_attention_heads: int) -> None:
        check_exclusive(self, where)
        self.kind.validate(self, where, num_attention_heads)

    def to_dict(self) -> dict[str, Any]:
        return write_part(self, None)

    @classmethod
    def from_dict(cls, data: dict, where: str, num_attention_heads: int | None = None) -> AttentionConfig:
        return cls._parse(data, where, num_attention_heads)


@dataclass(frozen=True)
class FFNConfig(_SubblockConfig):
    """FFN sub-block of one layer. Exactly one of: SwiGLU (`intermediate_size` / `ffn_mult`), linear, no-op."""

    ROLE: ClassVar[str] = "ffn"
    UNSUPPORTED: ClassVar[dict[str, Any]] = _UNSUPPORTED_FFN_KEYS

    intermediate_size: int | None = None
    """SwiGLU width. When only `ffn_mult` is given, the engines' rounding decides it (see `resolve`)."""
    ffn_mult: float | None = None
    """The published width multiplier: intermediate = round_up_256(int(2 * ffn_mult * hidden / 3))."""
    replace_with_linear: bool = False
    """Replace the FFN by one H x H linear map."""
    no_op: bool = False
    """No FFN at all: no weights, no norm."""

    def resolve(self, hidden_size: int) -> FFNConfig:
        """Canonical form: the exact `intermediate_size` (an explicit size wins over `ffn_mult`), no `ffn_mult`."""
        return self.kind.resolve(self, hidden_size)

    def validate(self, where: str) -> None:
        check_exclusive(self, where)
        self.kind.validate(self, where)

    def to_dict(self, hidden_size: int | None) -> dict[str, Any]:
        """Published layout: `ffn_mult` for the engines plus the exact `intermediate_size` for our loader (without
        the hidden size, only the width that was given)."""
        return write_part(self, hidden_size)

    @classmethod
    def from_dict(cls, data: dict, where: str) -> FFNConfig:
        return cls._parse(data, where)


@dataclass(frozen=True)
class BlockConfig:
    """One decoder layer of a Puzzle child: its attention and FFN variants."""

    attention: AttentionConfig = field(default_factory=AttentionConfig)
    ffn: FFNConfig = field(default_factory=FFNConfig)

    def validate(self, layer_idx: int, num_attention_heads: int) -> None:
        where = f"block_configs[{layer_idx}]"
        self.attention.validate(f"{where}.attention", num_attention_heads)
        self.ffn.validate(f"{where}.ffn")

    def resolve(self, hidden_size: int) -> BlockConfig:
        return replace(self, ffn=self.ffn.resolve(hidden_size))

    def to_dict(self, hidden_size: int | None) -> dict[str, Any]:
        return {"attention": self.attention.to_dict(), "ffn": self.ffn.to_dict(hidden_size)}

    @classmethod
    def from_dict(cls, data: dict | BlockConfig, layer_idx: int, num_attention_heads: int | None = None) -> BlockConfig:
        if isinstance(data, BlockConfig):
            return data
        where = f"block_configs[{layer_idx}]"
        if not isinstance(data, dict) or "attention" not in data or "ffn" not in data:
            raise BlockConfigError(f"{where} must be an object with 'attention' and 'ffn' entries, got {data!r}")
        rest = {k: v for k, v in data.items() if k not in ("attention", "ffn")}
        _reject_unsupported(where, rest, set(), _UNSUPPORTED_BLOCK_KEYS)
        return cls(
            attention=AttentionConfig.from_dict(data["attention"], f"{where}.attention", num_attention_heads),
            ffn=FFNConfig.from_dict(data["ffn"], f"{where}.ffn"),
        )

    def describe(self, num_attention_heads: int) -> tuple[str, str]:
        """Short human labels, e.g. ('gqa kv=8', 'swiglu 14336')."""
        return block_labels(self, num_attention_heads, "long")


def resolve_block_configs(block_configs: list | None, *, hidden_size: int, num_hidden_layers: int,
                          num_attention_heads: int, num_key_value_heads: int | None = None,
                          intermediate_size: int | None = None) -> list[BlockConfig]:
    """A config's `block_configs` (published dicts or `BlockConfig`s) parsed, checked and in canonical form; when
    None, every layer is the homogeneous block of `num_key_value_heads` and `intermediate_size`. `PuzzleConfig`
    and `ModelShape` (`shape.py`) both read a config's layers with this."""
    if block_configs is None:
        kv, size = num_key_value_heads or num_attention_heads, intermediate_size or 4 * hidden_size
        block_configs = [parent_block(num_attention_heads, kv, size)] * num_hidden_layers
    if not isinstance(block_configs, (list, tuple)):
        raise BlockConfigError(f"block_configs must be a list with one entry per layer, got {block_configs!r}")
    blocks = [BlockConfig.from_dict(b, i, num_attention_heads) for i, b in enumerate(block_configs)]
    if len(blocks) != num_hidden_layers:
        raise BlockConfigError(f"block_configs has {len(blocks)} entries but num_hidden_layers={num_hidden_layers}")
    for i, block in enumerate(blocks):
        block.validate(i, num_attention_heads)
    return [b.resolve(hidden_size) for b in blocks]


def parent_block(num_attention_heads: int, num_key_value_heads: int, intermediate_size: int) -> BlockConfig:
    """The block of a homogeneous (Llama-like) parent."""
    if num_key_value_heads <= 0 or num_attention_heads % num_key_value_heads:
        raise BlockConfigError(
            f"num_key_value_heads={num_key_value_heads} does not divide num_attention_heads={num_attention_heads}"
        )
    return BlockConfig(
        attention=AttentionConfig(n_heads_in_group=num_attention_heads // num_key_value_heads),
        ffn=FFNConfig(intermediate_size=intermediate_size),
    )
