"""Attention rescaling of the context windows relative to the task tokens (structured prompting, Hao et al. 2022).

Under plain PCW a task query q spreads its attention over all B windows at once, so the context takes about
B times the mass one window would, and the task's own tokens are drowned. Rescaling multiplies each window
key's unnormalised weight by a factor c (c = 1/B for `"per_window"`), for task queries only:

    attn(q) = (e_0 v_0 + c * sum_{j in windows} e_j v_j + sum_{t in task} e_t v_t)
              / (e_0     + c * sum_{j in windows} e_j     + sum_{t in task} e_t),    e_j = exp(q . k_j / sqrt(d))

i.e. log c is added to the additive mask entries of the window keys, in every layer and head, for every task
token (generated ones included). The windows' own encoding is unchanged, and so are the task tokens' keys.

The shared BOS (index 0 of the merged context, `window_of == -1`) is *not* scaled: it is one token present
once in the merged context, exactly as in a single window, so B identical windows rescaled by 1/B give exactly
the attention of one window. Without a shared BOS (tokenizers that add none, or windows that do not all begin
with it) every context token is a window token and is scaled. With one window c = 1 and nothing changes.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from .context import EncodedContext

ContextScale = Literal["none", "per_window"] | float


def check_context_scale(scale: ContextScale) -> ContextScale:
    """The scale, or a ValueError naming it: "none", "per_window" (c = 1/B) or a positive factor c."""
    if isinstance(scale, str):
        if scale not in ("none", "per_window"):
            raise ValueError(f"context_scale={scale!r}: expected 'none', 'per_window' or a positive number")
        return scale
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"context_scale={scale!r}: expected 'none', 'per_window' or a positive number")
    return float(scale)


def context_weight(scale: ContextScale, context: EncodedContext) -> float:
    """c: the factor on each window key's weight exp(q . k) for task queries."""
    if scale == "none":
        return 1.0
    if scale == "per_window":
        return 1.0 / context.num_windows
    return float(scale)


def context_bias(scale: ContextScale, context: EncodedContext, batch: int) -> torch.Tensor | None:
    """(batch, L) float64 bias on the context keys' scores: log c on window tokens, 0 on the shared BOS; None
    where c = 1 (the masks are then exactly plain PCW's)."""
    c = context_weight(scale, context)
    if c == 1.0:
        return None
    scaled = context.window_of >= 0  # -1: the shared BOS
    log_c = torch.tensor(math.log(c), dtype=torch.float64, device=scaled.device)
    bias = torch.where(scaled, log_c, torch.zeros((), dtype=torch.float64, device=scaled.device))
    return bias.unsqueeze(0).expand(batch, -1)
