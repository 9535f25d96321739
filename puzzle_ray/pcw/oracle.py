"""The exact one-pass PCW oracle: one forward over [BOS, windows..., task] with explicit positions and a 4-D mask.

Written from the semantics alone (no cache, no merging, no padding), to check the cached path against.

Left alignment with a shared BOS: the sequence is [BOS, w_1[1:], ..., w_n[1:], task]; every window token sees
the BOS and its own window causally. Otherwise each window keeps all its tokens; with right alignment and a
shared BOS, a window's own BOS (at its shifted position) is seen by that window only, and the task sees only
the longest window's BOS, as the reference's merged cache keeps. Task tokens see everything kept, and
themselves causally.

`context_weight` c (attention rescaling, see `rescale.py`) adds log c to the task rows' mask entries of the
window tokens they see, but not of the one BOS they share (the left-aligned shared BOS, or the longest window's
BOS that right alignment keeps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from .adapter import ModelAdapter
from .masks import build_masks
from .layout import Alignment

SHARED = -1  # group of the shared BOS: every window sees it
TASK = -2


@torch.no_grad()
def oracle_logits(
    model: PreTrainedModel,
    windows: Sequence[Sequence[int]],
    task: Sequence[int],
    bos_token_id: int | None,
    alignment: Alignment = "left",
    context_weight: float = 1.0,
) -> torch.Tensor:
    """(len(task), vocab) logits of the task tokens under PCW, from a single forward."""
    windows = [list(w) for w in windows]
    m = max(len(w) for w in windows)
    longest = max(range(len(windows)), key=lambda k: (len(windows[k]), -k))
    shared = bos_token_id is not None and all(w[0] == bos_token_id for w in windows)

    ids, pos, group, task_sees, unscaled = [], [], [], [], []
    if shared and alignment == "left":
        ids, pos, group, task_sees, unscaled = [windows[0][0]], [0], [SHARED], [True], [True]
    for k, w in enumerate(windows):
        shift = 0 if alignment == "left" else m - len(w)
        for i, t in enumerate(w):
            if shared and i == 0 and alignment == "left":
                continue  # the one shared BOS is already first
            ids.append(t)
            pos.append(shift + i)
            group.append(k)
            task_sees.append(not (shared and i == 0 and k != longest))
            unscaled.append(shared and i == 0 and k == longest and len(windows) > 1)
    n_ctx = len(ids)
    ids += list(task)
    pos += [m + i for i in range(len(task))]
    group += [TASK] * len(task)
    task_sees += [True] * len(task)
    unscaled += [True] * len(task)

    n = len(ids)
    g = torch.tensor(group)
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    same_window = g[:, None] == g[None, :]
    sees_bos = (g[None, :] == SHARED) & (g[:, None] != TASK)
    is_task = (g == TASK)[:, None]
    allowed = causal & (same_window | sees_bos | (is_task & torch.tensor(task_sees)[None, :]))  # (n, n)

    adapter = ModelAdapter(model)
    device = adapter.device
    input_ids = torch.tensor([ids], device=device)
    positions = torch.tensor([pos], device=device)
    bias = None
    if context_weight != 1.0:
        # (n, n): log c on (task query, window key) pairs; a per-query bias, so the mask is built here.
        scaled = is_task & ~torch.tensor(unscaled)[None, :]
        log_c = torch.tensor(math.log(context_weight), dtype=torch.float64)
        bias = torch.where(scaled, log_c, torch.zeros((), dtype=torch.float64)).to(device)
    logits = _forward(adapter, input_ids, positions, allowed.unsqueeze(0).to(device), bias)
    return logits[0, n_ctx:]


def _forward(adapter: ModelAdapter, input_ids, positions, allowed, bias) -> torch.Tensor:
    """One forward without cache; `bias` (n, n) is added to the attended entries of the additive mask."""
    if bias is None:
        return adapter.forward(input_ids, positions, allowed, positions, cache=None)
    mask = build_masks(allowed, positions, positions, adapter.kinds, adapter.dtype)
    add = bias.to(adapter.dtype)[None, None]
    if isinstance(mask, dict):
        mask = {kind: torch.where(m > torch.finfo(m.dtype).min, m + add, m) for kind, m in mask.items()}
    else:
        mask = torch.where(mask > torch.finfo(mask.dtype).min, mask + add, mask)
    return adapter.model(input_ids=input_ids, attention_mask=mask, position_ids=positions, use_cache=False).logits
