"""Initialise child sub-blocks from the parent's block (deterministic, no training).

- FFN width reduction by channel contribution: keep the k intermediate channels with the largest
  mean_t |a_t,i| * ||W_down[:, i]||_2, where a = silu(gate x) * up x (pruning gate, up and down together).
- Fewer KV heads: mean-pool K and V projections (and biases) over each group of merged KV heads.
- Linear replacements: attention -> W_o E W_v (each token attends to itself; E repeats KV heads to query
  heads), FFN -> W_down W_up; or ("lstsq", the default) the least-squares linear map from the sub-block's
  normalised input to its output on calibration activations, which is the best linear map by construction.
- no_op has no weights; the parent's own variant is a copy.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..arch.modeling import PuzzleDecoderLayer
from .space import SubVariant

LinearInit = Literal["lstsq", "product"]


class LayerCalibration:
    """Statistics of one parent layer over calibration tokens, gathered while the parent runs."""

    def __init__(self, layer: PuzzleDecoderLayer, lstsq_attention: bool, lstsq_ffn: bool):
        self.layer = layer
        self.tokens = 0
        h = layer.input_layernorm.weight.shape[0] if layer.self_attn is not None else layer.post_attention_layernorm.weight.shape[0]
        self.channel_abs_sum = None  # (I,) sum over tokens of |a_i|
        self.attn_gram = torch.zeros(h, h, dtype=torch.float64) if lstsq_attention and layer.self_attn is not None else None
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


def lstsq_map(gram: torch.Tensor, cross: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """W (H_out, H_in) minimising sum_t ||W x_t - y_t||^2 (ridge-regularised relative to the input scale)."""
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(gram + lam * eye, cross).T.float()


def _copy_(dst: nn.Module, src: nn.Module) -> None:
    dst.load_state_dict(src.state_dict())


def build_variant_layer(config: PuzzleConfig, layer_idx: int, parent: PuzzleDecoderLayer, variant: SubVariant) -> PuzzleDecoderLayer:
    """A layer whose `variant` sub-block is new and whose other sub-block IS the parent's (shared, frozen)."""
    from ..arch.blocks import AttentionConfig, FFNConfig

    if variant.kind == "attention":
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
def init_attention(layer: PuzzleDecoderLayer, parent: PuzzleDecoderLayer, calib: LayerCalibration | None, linear_init: LinearInit) -> None:
    """Fill the attention sub-block of `layer` (built by `build_variant_layer`) from the parent's."""
    new, old = layer.self_attn, parent.self_attn
    if new is None:
        return
    if old is None:
        raise ValueError(f"layer {parent.layer_idx}: cannot initialise attention from a parent block without one")
    _copy_(layer.input_layernorm, parent.input_layernorm)
    if hasattr(new, "linear_attn"):
        if hasattr(old, "linear_attn"):
            new.linear_attn.weight.copy_(old.linear_attn.weight)
        elif linear_init == "lstsq" and calib is not None and calib.attn_gram is not None:
            new.linear_attn.weight.copy_(lstsq_map(calib.attn_gram, calib.attn_cross))
        else:
            d, groups = old.head_dim, old.num_key_value_groups
            w_v = old.v_proj.weight.view(old.num_kv_heads, d, -1).repeat_interleave(groups, 0).reshape(-1, old.v_proj.in_features)
            new.linear_attn.weight.copy_(old.o_proj.weight @ w_v)  # (H, heads*D) @ (heads*D, H)
        return
    if not hasattr(old, "k_proj"):
        raise ValueError(f"layer {parent.layer_idx}: cannot initialise GQA from a linear attention parent block")
    _copy_(new.q_proj, old.q_proj)
    _copy_(new.o_proj, old.o_proj)
    for name in ("k_proj", "v_proj"):
        _pool_kv(getattr(new, name), getattr(old, name), old.num_kv_heads, new.num_kv_heads, old.head_dim)


def _pool_kv(dst: nn.Linear, src: nn.Linear, kv_old: int, kv_new: int, head_dim: int) -> None:
    """Mean-pool (kv_old -> kv_new, merging adjacent heads) or replicate (kv_new > kv_old) KV heads."""
    w = src.weight.view(kv_old, head_dim, -1)  # (KV, D, H)
    b = src.bias.view(kv_old, head_dim) if src.bias is not None else None
    if kv_new <= kv_old:
        if kv_old % kv_new:
            raise ValueError(f"cannot merge {kv_old} KV heads into {kv_new} groups")
        r = kv_old // kv_new
        w = w.view(kv_new, r, head_dim, -1).mean(1)
        b = b.view(kv_new, r, head_dim).mean(1) if b is not None else None
    else:
        if kv_new % kv_old:
            raise ValueError(f"cannot split {kv_old} KV heads into {kv_new}")
        w = w.repeat_interleave(kv_new // kv_old, 0)
        b = b.repeat_interleave(kv_new // kv_old, 0) if b is not None else None
    dst.weight.copy_(w.reshape(-1, w.shape[-1]))
    if b is not None:
        dst.bias.copy_(b.reshape(-1))


@torch.no_grad()
def init_ffn(layer: PuzzleDecoderLayer, parent: PuzzleDecoderLayer, calib: LayerCalibration | None, linear_init: LinearInit) -> None:
    """Fill the FFN sub-block of `layer` from the parent's."""
    new, old = layer.mlp, parent.mlp
    if new is None:
        return
    if old is None:
        raise ValueError(f"layer {parent.layer_idx}: cannot initialise an FFN from a parent block without one")
    _copy_(layer.post_attention_layernorm, parent.post_attention_layernorm)
    if hasattr(new, "linear_mlp"):
        if hasattr(old, "linear_mlp"):
            new.linear_mlp.weight.copy_(old.linear_mlp.weight)
        elif linear_init == "lstsq" and calib is not None and calib.ffn_gram is not None:
            new.linear_mlp.weight.copy_(lstsq_map(calib.ffn_gram, calib.ffn_cross))
        else:
            new.linear_mlp.weight.copy_(old.down_proj.weight @ old.up_proj.weight)  # (H, I) @ (I, H)
        return
    if not hasattr(old, "gate_proj"):
        raise ValueError(f"layer {parent.layer_idx}: cannot initialise a SwiGLU FFN from a linear parent block")
    keep = keep_channels(calib, old, new.intermediate_size)
    for name in ("gate_proj", "up_proj"):
        getattr(new, name).weight.copy_(getattr(old, name).weight[keep])
        if getattr(old, name).bias is not None:
            getattr(new, name).bias.copy_(getattr(old, name).bias[keep])
    new.down_proj.weight.copy_(old.down_proj.weight[:, keep])
    if old.down_proj.bias is not None:
        new.down_proj.bias.copy_(old.down_proj.bias)


def keep_channels(calib: LayerCalibration | None, old_mlp: nn.Module, k: int) -> torch.Tensor:
    """Indices (sorted) of the k channels to keep; all of them, in order, when k is the full width."""
    full = old_mlp.intermediate_size
    if k > full:
        raise ValueError(f"FFN width {k} is larger than the parent's {full}")
    if k == full:
        return torch.arange(full)
    if calib is None:
        raise ValueError("pruning an FFN needs calibration statistics")
    return calib.channel_scores().topk(k).indices.sort().values
