"""FFN kinds: SwiGLU with its own width, one H x H linear map, or nothing (no-op).

The published JSON part is `{"ffn_mult": ..., "intermediate_size": ..., "no_op": ..., "replace_with_linear": ...}`:
`ffn_mult` for the inference engines, the exact `intermediate_size` beside it for our own loader.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from .base import BlockConfigError, SubblockKind, register

ENGINE_ROUNDING = 256
"""vLLM, TensorRT-LLM, SGLang, llama.cpp and MLX round the FFN width up to a multiple of 256."""


def engine_intermediate_size(ffn_mult: float, hidden_size: int) -> int:
    """FFN width that the inference engines derive from `ffn_mult` (their exact formula)."""
    size = int(2 * ffn_mult * hidden_size / 3)
    return ((size + ENGINE_ROUNDING - 1) // ENGINE_ROUNDING) * ENGINE_ROUNDING


def ffn_mult_for(intermediate_size: int, hidden_size: int) -> float:
    """Inverse of `engine_intermediate_size`: exact for every multiple of 256."""
    return round(3 * intermediate_size / (2 * hidden_size), 6)


class _FFNKind(SubblockKind):
    role = "ffn"

    def write(self, cfg, hidden_size):
        return {"ffn_mult": None}

    def params(self, config, cfg) -> int:
        h = config.hidden_size
        return h * h + h  # the H x H map and the input norm


@register
class NoOpFFN(_FFNKind):
    """No FFN at all: no weights, no norm."""

    name, flag, tag, has_weights = "no_op", "no_op", "-", False

    def params(self, config, cfg) -> int:
        return 0


@register
class LinearFFNKind(_FFNKind):
    """The FFN replaced by one H x H map: the least-squares fit on calibration activations ('lstsq') or
    W_down W_up ('product')."""

    name, flag, tag, linear_map = "linear", "replace_with_linear", "lin", True

    def build(self, config, block, layer_idx):
        from ..modeling import LinearFFN

        return LinearFFN(config)

    def init_from_parent(self, new, old, calib, linear_init, layer_idx) -> None:
        from .fit import lstsq_map

        if hasattr(old, "linear_mlp"):
            new.linear_mlp.weight.copy_(old.linear_mlp.weight)
        elif linear_init == "lstsq" and calib is not None and calib.ffn_gram is not None:
            new.linear_mlp.weight.copy_(lstsq_map(calib.ffn_gram, calib.ffn_cross))
        else:
            new.linear_mlp.weight.copy_(old.down_proj.weight @ old.up_proj.weight)  # (H, I) @ (I, H)


@register
class SwiGLUKind(_FFNKind):
    """SwiGLU of width `intermediate_size` (or, before `resolve`, the engines' width for `ffn_mult`). A narrower
    one keeps the parent's channels of largest contribution mean_t |a_t,i| * ||W_down[:, i]||_2, where
    a = silu(gate x) * up x (pruning gate, up and down together)."""

    name, fallback, resizable = "swiglu", True, True
    keys = ("ffn_mult", "intermediate_size")

    def parse(self, data: dict, where: str, num_attention_heads: int | None = None) -> dict[str, Any]:
        return {"intermediate_size": data.get("intermediate_size"), "ffn_mult": data.get("ffn_mult")}

    def write(self, cfg, hidden_size):
        if hidden_size:
            size = self.resolve(cfg, hidden_size).intermediate_size
            return {"ffn_mult": ffn_mult_for(size, hidden_size), "intermediate_size": size}
        if cfg.intermediate_size is None:  # without the hidden size, only what was given
            return {"ffn_mult": cfg.ffn_mult}
        return {"intermediate_size": cfg.intermediate_size}

    def resolve(self, cfg, hidden_size: int):
        """The exact `intermediate_size` (an explicit size wins over `ffn_mult`), no `ffn_mult`."""
        size = cfg.intermediate_size
        if size is None:
            size = engine_intermediate_size(cfg.ffn_mult, hidden_size)
        return replace(cfg, intermediate_size=size, ffn_mult=None)

    def validate(self, cfg, where, num_attention_heads=None) -> None:
        size, mult = cfg.intermediate_size, cfg.ffn_mult
        if size is None:
            if mult is None:
                raise BlockConfigError(f"{where}: a SwiGLU FFN needs ffn_mult or intermediate_size")
            if not (isinstance(mult, (int, float)) and math.isfinite(mult) and mult > 0):
                raise BlockConfigError(f"{where}.ffn_mult={mult!r} must be a positive number")
        elif not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise BlockConfigError(f"{where}.intermediate_size={size!r} must be a positive integer")

    def build(self, config, block, layer_idx):
        from ..modeling import SwiGLU

        return SwiGLU(config, block.ffn.intermediate_size)

    def params(self, config, cfg) -> int:
        h, i = config.hidden_size, cfg.intermediate_size
        return 3 * h * i + (2 * i + h if config.mlp_bias else 0) + h

    def size(self, cfg, num_attention_heads=None) -> int | None:
        return cfg.intermediate_size

    def activation_width(self, config, cfg) -> int:
        return 3 * cfg.intermediate_size

    def timing_shape(self, config) -> dict[str, Any]:
        return {"mlp_bias": config.mlp_bias}

    def short_label(self, cfg, num_attention_heads) -> str:
        return str(cfg.intermediate_size or cfg.ffn_mult)

    def long_label(self, cfg, num_attention_heads) -> str:
        return f"swiglu {cfg.intermediate_size}"

    def init_from_parent(self, new, old, calib, linear_init, layer_idx) -> None:
        if not hasattr(old, "gate_proj"):
            raise ValueError(f"layer {layer_idx}: cannot initialise a SwiGLU FFN from a linear parent block")
        from .fit import keep_channels

        keep = keep_channels(calib, old, new.intermediate_size)
        for name in ("gate_proj", "up_proj"):
            getattr(new, name).weight.copy_(getattr(old, name).weight[keep])
            if getattr(old, name).bias is not None:
                getattr(new, name).bias.copy_(getattr(old, name).bias[keep])
        new.down_proj.weight.copy_(old.down_proj.weight[:, keep])
        if old.down_proj.bias is not None:
            new.down_proj.bias.copy_(old.down_proj.bias)
