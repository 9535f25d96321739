"""Initialise child sub-blocks from the parent's block (deterministic, no training).

Calibration (`LayerCalibration`) gathers what some kinds need from the parent's layer; the weight surgery
itself is each kind's `init_from_parent` (`arch/kinds/`): channel-contribution pruning of a SwiGLU,
mean-pooled KV heads of a GQA, least-squares or product linear maps. no_op has no weights; the parent's own
variant is a copy.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..arch.blocks import AttentionConfig, BlockConfig, FFNConfig
from ..arch.config import PuzzleConfig
from ..arch.kinds.fit import copy_module, keep_channels, lstsq_map
from ..arch.modeling import PuzzleDecoderLayer
from .space import SubVariant

__all__ = ["LayerCalibration", "build_variant_layer", "init_attention", "init_ffn", "keep_channels", "lstsq_map"]

LinearInit = Literal["lstsq", "product"]


class LayerCalibration:
    """Statistics of one parent layer over calibration tokens, gathered while the parent runs."""

    def __init__(self, layer: PuzzleDecoderLayer, lstsq_attention: bool, lstsq_ffn: bool):
        self.layer = layer
        self.tokens = 0
        norm = layer.input_layernorm if layer.self_attn is not None else layer.post_attention_layernorm
        h = norm.weight.shape[0]
        self.channel_abs_sum = None  # (I,) sum over tokens of |a_i|
        lstsq_attention = lstsq_attention and layer.self_attn is not None
        self.attn_gram = torch.zeros(h, h, dtype=torch.float64) if lstsq_attention else None
        self.attn_cross = torch.zeros(h, h, dtype=torch.float64) if self.attn_gram is not None else None
        self.ffn_gram = torch.zeros(h, h, dtype=torch.float64) if lstsq_ffn and layer.mlp is not None else None
        self.ffn_cross = torch.zeros(h, h, dtype=torch.float64) if self.ffn_gram is not None else None

    @torch.no_grad()
    def update(self, hidden: torch.Tensor, position_embeddings, mask) -> torch.Tensor:
        """Run the parent layer on `hidden` (B, T, H), accumulate statistics, return its output."""
        layer = self.layer
        self.tokens += hidden.shape[0] * hidden.shape[1]
        if layer.self_attn is not None:
            x = layer.input_layernorm(hidden)
            y = layer.self_attn(x, position_embeddings, mask, None)
            if self.attn_gram is not None:
                x2, y2 = x.reshape(-1, x.shape[-1]).double(), y.reshape(-1, y.shape[-1]).double()
                self.attn_gram += x2.T @ x2
                self.attn_cross += x2.T @ y2
            hidden = hidden + y
        if layer.mlp is not None:
            x = layer.post_attention_layernorm(hidden)
            mlp = layer.mlp
            if hasattr(mlp, "gate_proj"):
                act = nn.functional.silu(mlp.gate_proj(x)) * mlp.up_proj(x)  # (B, T, I)
                s = act.abs().reshape(-1, act.shape[-1]).sum(0).double()
                self.channel_abs_sum = s if self.channel_abs_sum is None else self.channel_abs_sum + s
                y = mlp.down_proj(act)
            else:
                y = mlp(x)
            if self.ffn_gram is not None:
                x2, y2 = x.reshape(-1, x.shape[-1]).double(), y.reshape(-1, y.shape[-1]).double()
                self.ffn_gram += x2.T @ x2
                self.ffn_cross += x2.T @ y2
            hidden = hidden + y
        return hidden

    def channel_scores(self) -> torch.Tensor:
        """(I,) contribution of each intermediate channel: mean |a_i| * ||W_down[:, i]||_2."""
        if self.channel_abs_sum is None:
            raise RuntimeError("no calibration tokens were seen for this layer's FFN")
        col_norms = self.layer.mlp.down_proj.weight.double().norm(dim=0)  # down: (H, I)
        return self.channel_abs_sum / self.tokens * col_norms


def build_variant_layer(config: PuzzleConfig, layer_idx: int, parent: PuzzleDecoderLayer,
                        variant: SubVariant) -> PuzzleDecoderLayer:
    """A layer whose `variant` sub-block is new and whose other sub-block IS the parent's (shared, frozen)."""
    if variant.role == "attention":
        layer = PuzzleDecoderLayer(config, layer_idx, BlockConfig(variant.config, FFNConfig(no_op=True)))
        layer.mlp = parent.mlp  # shared: the parent's FFN and its norm, not a copy
        if parent.mlp is not None:
            layer.post_attention_layernorm = parent.post_attention_layernorm
        layer.block = BlockConfig(variant.config, parent.block.ffn)
    else:
        layer = PuzzleDecoderLayer(config, layer_idx, BlockConfig(AttentionConfig(no_op=True), variant.config))
        layer.self_attn = parent.self_attn
        if parent.self_attn is not None:
            layer.input_layernorm = parent.input_layernorm
        layer.block = BlockConfig(parent.block.attention, variant.config)
    return layer


@torch.no_grad()
def init_attention(layer: PuzzleDecoderLayer, parent: PuzzleDecoderLayer, calib: LayerCalibration | None,
                   linear_init: LinearInit) -> None:
    """Fill the attention sub-block of `layer` (built by `build_variant_layer`) from the parent's."""
    new, old = layer.self_attn, parent.self_attn
    if new is None:
        return
    if old is None:
        raise ValueError(f"layer {parent.layer_idx}: cannot initialise attention from a parent block without one")
    copy_module(layer.input_layernorm, parent.input_layernorm)
    layer.block.attention.kind.init_from_parent(new, old, calib, linear_init, parent.layer_idx)


@torch.no_grad()
def init_ffn(layer: PuzzleDecoderLayer, parent: PuzzleDecoderLayer, calib: LayerCalibration | None,
             linear_init: LinearInit) -> None:
    """Fill the FFN sub-block of `layer` from the parent's."""
    new, old = layer.mlp, parent.mlp
    if new is None:
        return
    if old is None:
        raise ValueError(f"layer {parent.layer_idx}: cannot initialise an FFN from a parent block without one")
    copy_module(layer.post_attention_layernorm, parent.post_attention_layernorm)
    layer.block.ffn.kind.init_from_parent(new, old, calib, linear_init, parent.layer_idx)
