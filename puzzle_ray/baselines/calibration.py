"""One pass of the parent over calibration tokens: what the baselines need to choose and initialise children.

- per layer, the library's `LayerCalibration` (mean |activation| of every FFN channel, for channel-contribution
  pruning: the same statistic the block library initialises its narrow FFNs from);
- per layer, ShortGPT's block influence BI_i = 1 - mean over tokens of cos(h_i, h_{i+1}), where h_i is the
  residual stream entering layer i: a layer that barely turns the hidden state is the first to remove.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ..arch.modeling import PuzzleForCausalLM, prepare_block_inputs
from ..library.init import LayerCalibration


@dataclass
class ParentCalibration:
    layers: list[LayerCalibration]
    """Per layer: FFN channel statistics (no least-squares statistics: the baselines use no linear blocks)."""
    influence: list[float]
    """Per layer: block influence, 1 - mean cosine(layer input, layer output) over the calibration tokens."""
    tokens: int


@torch.no_grad()
def calibrate_parent(model: PuzzleForCausalLM, batches: Iterable[torch.Tensor]) -> ParentCalibration:
    """Run `model` layer by layer over `batches` of token ids (B, T) and gather both statistics."""
    model.eval()
    layers = [LayerCalibration(layer, lstsq_attention=False, lstsq_ffn=False) for layer in model.model.layers]
    cos_sums = torch.zeros(len(layers), dtype=torch.float64)
    tokens = 0
    for x in batches:
        h = model.model.embed_tokens(x)  # (B, T, H)
        position_embeddings, mask = prepare_block_inputs(model.config, model.model.rotary_emb, h)
        tokens += x.numel()
        for i, calib in enumerate(layers):
            out = calib.update(h, position_embeddings, mask)  # (B, T, H)
            cos_sums[i] += torch.nn.functional.cosine_similarity(h.double(), out.double(), dim=-1).sum()
            h = out
    if tokens == 0:
        raise ValueError("calibration: the batches hold no tokens")
    influence = (1.0 - cos_sums / tokens).tolist()
    return ParentCalibration(layers, influence, tokens)
