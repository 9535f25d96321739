"""The GKD loss terms: per-layer cosine distance of hidden states, KL(parent || child), optional LM loss.

Logits are never materialised for the whole batch: tokens are processed in chunks of `chunk_tokens`, and each
chunk's logits are recomputed in the backward (activation checkpointing), so at most (chunk_tokens, V) logits
per model exist at any time, which is what makes large vocabularies (128k) affordable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


def cosine_distance(child: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of 1 - cos(child_t, parent_t); inputs (..., H).

    Computed as ½‖c/‖c‖ − p/‖p‖‖², which equals 1 − cos in real arithmetic, but is exactly 0 when the two
    are the same tensor and has no cancellation near 0 (1 − cos would be rounding noise of ~1e-7 there).
    """
    c = F.normalize(child.float(), dim=-1, eps=1e-12)
    p = F.normalize(parent.float(), dim=-1, eps=1e-12)
    return 0.5 * (c - p).pow(2).sum(-1).mean()


def hidden_cosine_loss(child_hidden: Sequence[torch.Tensor], parent_hidden: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum over aligned layers (layer i of the child against layer i of the parent) of `cosine_distance`."""
    if len(child_hidden) != len(parent_hidden):
        raise ValueError(f"{len(child_hidden)} child hidden states vs {len(parent_hidden)} parent hidden states")
    return torch.stack([cosine_distance(c, p) for c, p in zip(child_hidden, parent_hidden)]).sum()


def next_token_labels(input_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T): position t is labelled with token t + 1; the last position has no label."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[:, :-1] = input_ids[:, 1:]
    return labels


def _chunk_terms(
    child_head: Callable[[torch.Tensor], torch.Tensor],
    parent_head_weight: torch.Tensor,
    child_h: torch.Tensor,
    parent_h: torch.Tensor,
    labels: torch.Tensor,
    with_lm: bool,
) -> torch.Tensor:
    """Summed KL and cross-entropy of one chunk of N tokens: child_h, parent_h (N, H), labels (N,) -> (2,)."""
    child_logp = F.log_softmax(child_head(child_h).float(), dim=-1)  # (N, V)
    with torch.no_grad():
        parent_logp = F.log_softmax(F.linear(parent_h, parent_head_weight).float(), dim=-1)  # (N, V)
    kl = F.kl_div(child_logp, parent_logp, log_target=True, reduction="sum")  # sum p (log p - log q)
    if with_lm:
        ce = F.nll_loss(child_logp, labels, ignore_index=IGNORE_INDEX, reduction="sum")
    else:
        ce = child_logp.new_zeros(())
    return torch.stack([kl, ce])


def chunked_kl_and_lm(
    child_final: torch.Tensor,
    parent_final: torch.Tensor,
    child_head: Callable[[torch.Tensor], torch.Tensor],
    parent_head_weight: torch.Tensor,
    input_ids: torch.Tensor,
    chunk_tokens: int,
    with_lm: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """KL(parent || child) per token and the child's LM loss per labelled token.

    child_final, parent_final: (B, T, H) final-norm outputs; child_head maps (N, H) -> (N, V); parent_head_weight
    (V, H); input_ids (B, T). Returns two scalars (the LM loss is 0 unless `with_lm`).
    """
    hidden = child_final.shape[-1]
    child_flat = child_final.reshape(-1, hidden)  # (B*T, H)
    parent_flat = parent_final.reshape(-1, parent_final.shape[-1]).to(parent_head_weight.dtype)
    labels = next_token_labels(input_ids).reshape(-1)  # (B*T,)
    sums = child_flat.new_zeros(2, dtype=torch.float32)
    recompute = torch.is_grad_enabled() and child_flat.requires_grad
    for start in range(0, child_flat.shape[0], chunk_tokens):
        part = slice(start, start + chunk_tokens)
        args = (child_head, parent_head_weight, child_flat[part], parent_flat[part], labels[part], with_lm)
        if recompute:
            sums = sums + checkpoint(_chunk_terms, *args, use_reentrant=False)
        else:
            sums = sums + _chunk_terms(*args)
    num_tokens = child_flat.shape[0]
    num_labelled = max(1, int((labels != IGNORE_INDEX).sum()))
    return sums[0] / num_tokens, sums[1] / num_labelled
