"""The AdamW every trainer steps: built from an `OptimizerConfig` (DeepSpeed builds its own from the options)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .config import OptimizerConfig


def adamw_options(cfg: OptimizerConfig) -> dict:
    """AdamW's hyper-parameters from `cfg` (also the `params` of a DeepSpeed optimizer section)."""
    return {"lr": cfg.lr, "betas": cfg.betas, "weight_decay": cfg.weight_decay}


def build_adamw(
    cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter], decay_matrices_only: bool = False, **torch_options
) -> torch.optim.AdamW:
    """AdamW over `params` (one parameter group), or, with `decay_matrices_only`, two groups: matrices decayed,
    norm gains and biases not. `torch_options` go to `torch.optim.AdamW` as they are (e.g. `fused=False`)."""
    options = adamw_options(cfg)
    params = list(params)
    if decay_matrices_only:
        decay = [p for p in params if p.ndim >= 2]
        rest = [p for p in params if p.ndim < 2]
        params = [{"params": decay, "weight_decay": options["weight_decay"]}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(params, **options, **torch_options)
