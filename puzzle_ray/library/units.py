"""Trainable units of BLD and their composition into library entries (pure torch, no Ray).

A unit is one new sub-block (decoupled mode: an attention or FFN variant placed beside the parent's frozen
other half) or one new whole block (coupled mode: an (attention, FFN) pair). Library entries are
(attention, FFN) pairs; in decoupled mode their halves come from two units (or the parent).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..arch.modeling import PuzzleDecoderLayer
from .config import BLDConfig
from .init import LayerCalibration, build_variant_layer, init_attention, init_ffn
from .space import LayerSpace, SubVariant


@dataclass
class BLDUnit:
    uid: str
    """'L3/attention/kv1', 'L3/ffn/512' or 'L3/pair/kv1+512'"""
    layer_idx: int
    layer: PuzzleDecoderLayer
    trainable: bool
    losses: list[tuple[int, float]] = field(default_factory=list)

    def parameters(self) -> list[nn.Parameter]:
        return [p for p in self.layer.parameters() if p.requires_grad]

    def weights(self) -> dict[str, torch.Tensor]:
        """The unit's own weights, named relative to its layer (e.g. 'self_attn.k_proj.weight')."""
        own = {id(p) for p in self.parameters()}
        return {k: v for k, v in self.layer.named_parameters() if id(v) in own}


def normalised_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE(out, target) / MSE(target, 0): scale-free, so layers of any activation size compare."""
    return (out - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-12)


def pair_names(space: LayerSpace) -> list[tuple[SubVariant, SubVariant]]:
    return [(a, f) for a in space.attention for f in space.ffn]


def build_units(config: PuzzleConfig, bld: BLDConfig, layer_idx: int, parent: PuzzleDecoderLayer,
                space: LayerSpace, calib: LayerCalibration | None, initialise: bool = True) -> dict[str, BLDUnit]:
    """The trainable units of one layer, initialised from the parent (or left as built when `initialise` is
    False, for weights that a checkpoint will overwrite). Parent variants and no-ops are not units."""
    units = {}
    if bld.mode == "decoupled":
        for v in space.attention + space.ffn:
            if not v.trainable:
                continue
            layer = build_variant_layer(config, layer_idx, parent, v)
            if initialise:
                (init_attention if v.role == "attention" else init_ffn)(layer, parent, calib, bld.linear_init)
            _freeze_except(layer, v.role)
            uid = f"L{layer_idx}/{v.role}/{v.name}"
            units[uid] = BLDUnit(uid, layer_idx, layer, True)
    else:
        for a, f in pair_names(space):
            if not (a.trainable or f.trainable):
                continue
            layer = PuzzleDecoderLayer(config, layer_idx, BlockConfig(a.config, f.config))
            if initialise:
                init_attention(layer, parent, calib, bld.linear_init)
                init_ffn(layer, parent, calib, bld.linear_init)
            uid = f"L{layer_idx}/pair/{a.name}+{f.name}"
            units[uid] = BLDUnit(uid, layer_idx, layer, True)
    return units


def _freeze_except(layer: PuzzleDecoderLayer, role: str) -> None:
    own = {"attention": ("self_attn", "input_layernorm"), "ffn": ("mlp", "post_attention_layernorm")}[role]
    for name, p in layer.named_parameters():
        p.requires_grad_(name.split(".")[0] in own)


class LayerEntries:
    """Runs every library entry (attention, FFN) of one layer, from units or the parent's sub-blocks."""

    def __init__(self, layer_idx: int, parent: PuzzleDecoderLayer, space: LayerSpace, units: dict[str, BLDUnit],
                 mode: str):
        self.layer_idx, self.parent, self.space, self.units, self.mode = layer_idx, parent, space, units, mode

    def _attention(self, v: SubVariant) -> PuzzleDecoderLayer | None:
        if v.is_parent:
            return self.parent
        return self.units[f"L{self.layer_idx}/attention/{v.name}"].layer if v.trainable else None

    def _ffn(self, v: SubVariant) -> PuzzleDecoderLayer | None:
        if v.is_parent:
            return self.parent
        return self.units[f"L{self.layer_idx}/ffn/{v.name}"].layer if v.trainable else None

    def forward(self, a: SubVariant, f: SubVariant, h: torch.Tensor, pos, mask) -> torch.Tensor:
        """Output of the block (a, f) given the parent's block input h (B, T, H)."""
        if self.mode == "coupled" and (a.trainable or f.trainable):
            return self.units[f"L{self.layer_idx}/pair/{a.name}+{f.name}"].layer(h, pos, mask, None)
        att, ffn = self._attention(a), self._ffn(f)
        if att is not None and att.self_attn is not None:
            h = h + att.self_attn(att.input_layernorm(h), pos, mask, None)
        if ffn is not None and ffn.mlp is not None:
            h = h + ffn.mlp(ffn.post_attention_layernorm(h))
        return h

    def weight_sources(self, a: SubVariant, f: SubVariant) -> dict[str, str]:
        """Which unit (or 'parent', or nothing for no-op) provides each half of the entry's weights."""
        if self.mode == "coupled" and (a.trainable or f.trainable):
            uid = f"L{self.layer_idx}/pair/{a.name}+{f.name}"
            return {"block": uid}
        out = {}
        for v in (a, f):
            if v.config.kind.has_weights:
                out[v.role] = "parent" if v.is_parent else f"L{self.layer_idx}/{v.role}/{v.name}"
        return out
