"""Explicit attention masks for PCW forwards, in the form transformers 5 models accept as-is.

PCW always passes a 4-D mask: without one, transformers 5 reads restarting position ids as
packed sequences, and computes sliding windows from cache indices rather than positions. A 4-D mask is returned
unchanged by `create_causal_mask`, so it must already be in the kernel's form: additive floats (0 = attend,
dtype minimum = blocked) work for both eager (which adds the mask) and sdpa.

An optional additive `bias` (B, K) on the keys that are attended (e.g. -log B on context keys when the task
rescales its attention over B windows) is added to the attended entries only, so blocked ones stay blocked.

Sliding-window layers (Mistral, Qwen2 with `use_sliding_window`) see a key only if its *position* is within the
window of the query's position. Models mixing full and sliding layers (Qwen2's `layer_types`) get a dict
{"full_attention": ..., "sliding_attention": ...}, which their forward accepts in place of a mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedConfig


@dataclass(frozen=True)
class MaskKinds:
    """Which mask each layer needs: a window size if some layers slide, and whether all of them do."""

    sliding_window: int | None
    all_sliding: bool

    @classmethod
    def of(cls, config: PreTrainedConfig) -> MaskKinds:
        window = getattr(config, "sliding_window", None)
        layer_types = getattr(config, "layer_types", None)
        if window is None:
            return cls(None, False)
        if layer_types is None:
            # Mistral: one `sliding_window` for every layer, and no layer_types.
            return cls(int(window), True)
        sliding = [t == "sliding_attention" for t in layer_types]
        if not any(sliding):
            return cls(None, False)
        return cls(int(window), all(sliding))


def additive(allowed: torch.Tensor, dtype: torch.dtype, bias: torch.Tensor | None = None) -> torch.Tensor:
    """(B, Q, K) bool -> (B, 1, Q, K) additive float mask: 0 (or `bias` (B, K), the same for every query) where
    attended, dtype minimum where blocked."""
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    if bias is not None:
        zero = bias.to(dtype).unsqueeze(1)  # (B, 1, K): broadcast over the queries
    blocked = torch.tensor(torch.finfo(dtype).min, dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, blocked).unsqueeze(1)


def build_masks(
    allowed: torch.Tensor,
    query_pos: torch.Tensor,
    key_pos: torch.Tensor,
    kinds: MaskKinds,
    dtype: torch.dtype,
    bias: torch.Tensor | None = None,
) -> torch.Tensor | dict[str, torch.Tensor]:
    """The model's `attention_mask` argument.

    allowed: (B, Q, K) bool, which keys each query may see (windows, causality, padding);
    query_pos: (B, Q) and key_pos: (B, K) position ids, for sliding-window layers;
    bias: (B, K) float added to the attended keys' scores (None: 0).
    """
    full = additive(allowed, dtype, bias)
    if kinds.sliding_window is None:
        return full
    in_window = (query_pos[:, :, None] - key_pos[:, None, :]) < kinds.sliding_window  # (B, Q, K)
    sliding = additive(allowed & in_window, dtype, bias)
    if kinds.all_sliding:
        return sliding
    return {"full_attention": full, "sliding_attention": sliding}
