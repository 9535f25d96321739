"""A child built straight from the parent's weights, without any training (the uniform and depth baselines).

Per layer: the parent's block is copied; a narrower FFN keeps the channels of largest contribution and fewer
KV heads mean-pool the parent's K/V projections (both `library.init`, the same initialisation the block library
starts BLD from); a no-op sub-block has no weights. The embeddings, final norm and LM head are the parent's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..arch.blocks import BlockConfig
from ..arch.modeling import PuzzleForCausalLM
from ..library.init import init_attention, init_ffn
from .calibration import ParentCalibration


@torch.no_grad()
def prune_from_parent(parent: PuzzleForCausalLM, blocks: Sequence[BlockConfig],
                      calibration: ParentCalibration | None, allow_linear: bool = False) -> PuzzleForCausalLM:
    """The child with `blocks` (one per layer), initialised from `parent`. A narrower FFN needs `calibration`.
    Linear replacements are refused unless `allow_linear` (then they start as the product of the parent's
    matrices, W_o W_v or W_down W_up: a valid model, not a fitted one, as the engine check needs)."""
    config = parent.config
    if len(blocks) != config.num_hidden_layers:
        raise ValueError(f"{len(blocks)} blocks for a {config.num_hidden_layers}-layer parent")
    for i, block in enumerate(blocks):
        if not allow_linear and (block.attention.kind.linear_map or block.ffn.kind.linear_map):
            raise ValueError(f"layer {i}: linear replacements need least-squares statistics; use the block library")
    data = config.to_dict()
    data["block_configs"] = [b.to_dict(config.hidden_size) for b in blocks]
    child_config = type(config)(**data)
    child_config._attn_implementation = config._attn_implementation or "sdpa"
    child = PuzzleForCausalLM(child_config).eval()
    child.model.embed_tokens.load_state_dict(parent.model.embed_tokens.state_dict())
    child.model.norm.load_state_dict(parent.model.norm.state_dict())
    if not child_config.tie_word_embeddings:
        child.lm_head.load_state_dict(parent.lm_head.state_dict())
    for i, (new, old) in enumerate(zip(child.model.layers, parent.model.layers)):
        if new.block.resolve(config.hidden_size) == old.block.resolve(config.hidden_size):
            new.load_state_dict(old.state_dict())
            continue
        calib = calibration.layers[i] if calibration is not None else None
        init_attention(new, old, calib, "product")
        init_ffn(new, old, calib, "product")
    return child.to(next(parent.parameters()).dtype)

