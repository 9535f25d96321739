"""Per-layer block configurations in the published Puzzle (`nemotron-nas`) format.

A Puzzle child is a decoder whose every layer has its own attention and FFN variant:

    attention: GQA with its own KV-head count (`n_heads_in_group` = query heads / KV heads),
               `replace_with_linear` (one H x H matrix), or `no_op` (nothing at all);
    ffn:       SwiGLU with its own intermediate size (`ffn_mult` or `intermediate_size`),
               `replace_with_linear`, or `no_op`.

These dataclasses are the contract between search, realisation, export and every inference engine,
so they speak the published JSON layout exactly (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any


class BlockConfigError(ValueError):
    """An impossible or unsupported block configuration; the message names the layer and the field."""


ENGINE_ROUNDING = 256
"""vLLM, TensorRT-LLM, SGLang, llama.cpp and MLX round the FFN width up to a multiple of 256."""


def engine_intermediate_size(ffn_mult: float, hidden_size: int) -> int:
    """FFN width that the inference engines derive from `ffn_mult` (their exact formula)."""
    size = int(2 * ffn_mult * hidden_size / 3)
    return ((size + ENGINE_ROUNDING - 1) // ENGINE_ROUNDING) * ENGINE_ROUNDING


def ffn_mult_for(intermediate_size: int, hidden_size: int) -> float:
    """Inverse of `engine_intermediate_size`: exact for every multiple of 256."""
    return round(3 * intermediate_size / (2 * hidden_size), 6)


# Keys of NVIDIA's block configs that name features we do not implement. A null / false / default value is
# accepted (the published files always carry them); anything else is rejected rather than silently ignored.
_UNSUPPORTED_ATTENTION_KEYS = {
    "window_length": None,
    "num_sink_tokens": None,
    "sparsify": None,
    "unshifted_sink": False,
    "use_prefill_window_in_sink_attention": False,
    "llama4": None,
    "mamba": None,
    "num_key_value_heads": None,  # some NVIDIA tooling writes it; we accept it only when consistent (below)
}
_UNSUPPORTED_FFN_KEYS = {"sparsify": None, "moe": None, "gated": True, "hidden_act": "silu", "weights_precision": "bf16"}
_UNSUPPORTED_BLOCK_KEYS = {"parallel_blocks": None, "weights_precision": "bf16"}


def _reject_unsupported(where: str, data: dict, allowed: set[str], defaults: dict[str, Any]) -> None:
    for key, value in data.items():
        if key in allowed:
            continue
        if key in defaults:
            if value is None or value is False or value == defaults[key]:
                continue
            raise BlockConfigError(f"{where}.{key}={value!r}: this feature is not supported by puzzle-ray")
        if value in (None, False):
            continue  # unknown but switched off: harmless
        raise BlockConfigError(f"{where}.{key}={value!r}: unknown block-config field")


@dataclass(frozen=True)
class AttentionConfig:
    """Attention sub-block of one layer. Exactly one of: GQA (`n_heads_in_group`), linear, no-op."""

    n_heads_in_group: int | None = None
    """Query heads per KV head (GQA group size); KV heads = attention heads // n_heads_in_group."""
    replace_with_linear: bool = False
    """Replace attention by one H x H linear map (each token attends only to itself)."""
    no_op: bool = False
    """No attention at all: no weights, no norm, the hidden state passes through."""

    @property
    def kind(self) -> str:
        return "no_op" if self.no_op else "linear" if self.replace_with_linear else "gqa"

    def num_kv_heads(self, num_attention_heads: int) -> int:
        """KV heads of a GQA sub-block, 0 for no-op and linear (they hold no KV cache)."""
        return 0 if self.kind != "gqa" else num_attention_heads // self.n_heads_in_group

    def validate(self, where: str, num_attention_heads: int) -> None:
        if self.no_op and self.replace_with_linear:
            raise BlockConfigError(f"{where}: no_op and replace_with_linear cannot both be true")
        if self.kind != "gqa":
            return
        n = self.n_heads_in_group
        if n is None:
            raise BlockConfigError(f"{where}.n_heads_in_group is required for a GQA attention block")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            raise BlockConfigError(f"{where}.n_heads_in_group={n!r} must be a positive integer")
        if num_attention_heads % n:
            raise BlockConfigError(
                f"{where}.n_heads_in_group={n} does not divide the {num_attention_heads} attention heads"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_heads_in_group": self.n_heads_in_group if self.kind == "gqa" else None,
            "no_op": self.no_op,
            "replace_with_linear": self.replace_with_linear,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str, num_attention_heads: int | None = None) -> AttentionConfig:
        data = dict(data)
        kv = data.pop("num_key_value_heads", None)
        _reject_unsupported(where, data, {"n_heads_in_group", "no_op", "replace_with_linear"}, _UNSUPPORTED_ATTENTION_KEYS)
        n = data.get("n_heads_in_group")
        if kv is not None and num_attention_heads is not None:
            if n is None and kv > 0 and num_attention_heads % kv == 0:
                n = num_attention_heads // kv
            elif n is None or num_attention_heads // n != kv:
                raise BlockConfigError(f"{where}.num_key_value_heads={kv} disagrees with n_heads_in_group={n}")
        no_op, linear = bool(data.get("no_op", False)), bool(data.get("replace_with_linear", False))
        return cls(n_heads_in_group=None if (no_op or linear) else n, replace_with_linear=linear, no_op=no_op)


@dataclass(frozen=True)
class FFNConfig:
    """FFN sub-block of one layer. Exactly one of: SwiGLU (`intermediate_size` / `ffn_mult`), linear, no-op."""

    intermediate_size: int | None = None
    """SwiGLU width. When only `ffn_mult` is given, the engines' rounding decides it (see `resolve`)."""
    ffn_mult: float | None = None
    """The published width multiplier: intermediate = round_up_256(int(2 * ffn_mult * hidden / 3))."""
    replace_with_linear: bool = False
    """Replace the FFN by one H x H linear map."""
    no_op: bool = False
    """No FFN at all: no weights, no norm."""

    @property
    def kind(self) -> str:
        return "no_op" if self.no_op else "linear" if self.replace_with_linear else "swiglu"

    def resolve(self, hidden_size: int) -> FFNConfig:
        """Canonical form: the exact `intermediate_size` (an explicit size wins over `ffn_mult`), no `ffn_mult`."""
        if self.kind != "swiglu":
            return self
        size = self.intermediate_size
        if size is None:
            size = engine_intermediate_size(self.ffn_mult, hidden_size)
        return replace(self, intermediate_size=size, ffn_mult=None)

    def validate(self, where: str) -> None:
        if self.no_op and self.replace_with_linear:
            raise BlockConfigError(f"{where}: no_op and replace_with_linear cannot both be true")
        if self.kind != "swiglu":
            return
        size = self.intermediate_size
        if size is None:
            if self.ffn_mult is None:
                raise BlockConfigError(f"{where}: a SwiGLU FFN needs ffn_mult or intermediate_size")
            if not (isinstance(self.ffn_mult, (int, float)) and math.isfinite(self.ffn_mult) and self.ffn_mult > 0):
                raise BlockConfigError(f"{where}.ffn_mult={self.ffn_mult!r} must be a positive number")
        elif not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise BlockConfigError(f"{where}.intermediate_size={size!r} must be a positive integer")

    def to_dict(self, hidden_size: int) -> dict[str, Any]:
        """Published layout: `ffn_mult` for the engines plus the exact `intermediate_size` for our loader."""
        if self.kind != "swiglu":
            return {"ffn_mult": None, "no_op": self.no_op, "replace_with_linear": self.replace_with_linear}
        size = self.resolve(hidden_size).intermediate_size
        return {
            "ffn_mult": ffn_mult_for(size, hidden_size),
            "intermediate_size": size,
            "no_op": False,
            "replace_with_linear": False,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str) -> FFNConfig:
        data = dict(data)
        _reject_unsupported(where, data, {"ffn_mult", "intermediate_size", "no_op", "replace_with_linear"}, _UNSUPPORTED_FFN_KEYS)
        no_op, linear = bool(data.get("no_op", False)), bool(data.get("replace_with_linear", False))
        swiglu = not (no_op or linear)
        return cls(
            intermediate_size=data.get("intermediate_size") if swiglu else None,
            ffn_mult=data.get("ffn_mult") if swiglu else None,
            replace_with_linear=linear,
            no_op=no_op,
        )


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

    def to_dict(self, hidden_size: int) -> dict[str, Any]:
        return {"attention": self.attention.to_dict(), "ffn": self.ffn.to_dict(hidden_size)}

    @classmethod
    def from_dict(cls, data: dict | BlockConfig, layer_idx: int, num_attention_heads: int | None = None) -> BlockConfig:
        if isinstance(data, BlockConfig):
            return data
        where = f"block_configs[{layer_idx}]"
        if not isinstance(data, dict) or "attention" not in data or "ffn" not in data:
            raise BlockConfigError(f"{where} must be an object with 'attention' and 'ffn' entries, got {data!r}")
        _reject_unsupported(where, {k: v for k, v in data.items() if k not in ("attention", "ffn")}, set(), _UNSUPPORTED_BLOCK_KEYS)
        return cls(
            attention=AttentionConfig.from_dict(data["attention"], f"{where}.attention", num_attention_heads),
            ffn=FFNConfig.from_dict(data["ffn"], f"{where}.ffn"),
        )

    def describe(self, num_attention_heads: int) -> tuple[str, str]:
        """Short human labels, e.g. ('gqa kv=8', 'ffn 14336')."""
        a = self.attention
        att = f"gqa kv={a.num_kv_heads(num_attention_heads)}" if a.kind == "gqa" else a.kind
        f = self.ffn
        ffn = f"swiglu {f.intermediate_size}" if f.kind == "swiglu" else f.kind
        return att, ffn


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
