"""Weight surgery shared by the kinds' initialisation from the parent (pure torch)."""

from __future__ import annotations

import torch
from torch import nn


def copy_module(dst: nn.Module, src: nn.Module) -> None:
    dst.load_state_dict(src.state_dict())


def lstsq_map(gram: torch.Tensor, cross: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """W (H_out, H_in) minimising sum_t ||W x_t - y_t||^2 (ridge-regularised relative to the input scale)."""
    lam = ridge * gram.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(gram + lam * eye, cross).T.float()


def pool_kv(dst: nn.Linear, src: nn.Linear, kv_old: int, kv_new: int, head_dim: int) -> None:
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


def keep_channels(calib, old_mlp: nn.Module, k: int) -> torch.Tensor:
    """Indices (sorted) of the k SwiGLU channels to keep (largest `calib.channel_scores()`); all of them, in
    order, when k is the full width."""
    full = old_mlp.intermediate_size
    if k > full:
        raise ValueError(f"FFN width {k} is larger than the parent's {full}")
    if k == full:
        return torch.arange(full)
    if calib is None:
        raise ValueError("pruning an FFN needs calibration statistics")
    return calib.channel_scores().topk(k).indices.sort().values
