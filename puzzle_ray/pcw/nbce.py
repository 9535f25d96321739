"""Naive-Bayes context extension (NBCE, Su et al. 2024): no shared attention; per-window predictions, combined.

Each window k is read by the task alone, as the ordinary forward [window_k, task] would (window_k at positions
0..len_k-1, the task from len_k on), and once more with no context at all ([BOS, task] if the windows share a
BOS, else [task] alone) for p_0. Their next-token (or label) log-distributions are combined:

    log p(y) = (1 + beta) * pool_k log p_k(y) - beta * log p_0(y),   then renormalised over y

pooling "min_entropy" (the paper's default, its "max pooling"): log p_k* of the window k* whose distribution
has the lowest entropy, chosen per predicted token; "mean": the mean over windows of log p_k. beta = 0.25 by
default, as the paper's code. beta = B - 1 with "mean" is the exact naive-Bayes posterior with a flat prior.

Next-token scores (`logits`, `generate`, greedy label decoding) combine the vocabulary distributions at every
step. Label log-likelihood classification (`label_scores`, `classify(method="loglik")`) combines at the label
level: per window, each label's total log-likelihood (sum of its tokens' log-probs), renormalised over the
labels, is p_k(label); the combined scores are normalised log-probabilities over the labels.

The windows are encoded as PCW encodes them (which keeps them independent); each query then
takes B + 1 model rows in one forward, each row seeing only its window's keys from its own positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from transformers import PreTrainedModel

from .context import EncodedContext
from .layout import Alignment
from .parallel_context import ParallelContextWindows, Tokens
from .query import QueryBatch

Pooling = Literal["min_entropy", "mean"]
POOLINGS = ("min_entropy", "mean")
DEFAULT_BETA = 0.25


def nbce_combine(logp: torch.Tensor, beta: float = DEFAULT_BETA, pooling: Pooling = "min_entropy") -> torch.Tensor:
    """(..., 1 + B, C) log-distributions, row 0 without context, rows 1.. one per window -> (..., C) combined,
    log-normalised: log_softmax((1 + beta) * pool_k logp_k - beta * logp_0)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
    uncond, cond = logp[..., 0, :], logp[..., 1:, :]
    if pooling == "mean":
        pooled = cond.mean(dim=-2)
    else:
        entropy = torch.special.entr(cond.exp()).sum(dim=-1)  # (..., B); entr(0) = 0, no 0 * -inf
        best = entropy.argmin(dim=-1, keepdim=True)  # the first of equally confident windows
        pooled = torch.gather(cond, -2, best.unsqueeze(-1).expand(*best.shape, cond.shape[-1])).squeeze(-2)
    return torch.log_softmax((1 + beta) * pooled - beta * uncond, dim=-1)


class NaiveBayesContextWindows(ParallelContextWindows):
    """The `ParallelContextWindows` API (encode, logits, generate, classify, label_scores) under NBCE.

    `logits` returns combined log-probabilities (already normalised), which every decoding step uses as scores.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer=None,
        beta: float = DEFAULT_BETA,
        pooling: Pooling = "min_entropy",
        bos_token_id: int | None = None,
        add_bos: bool = False,
    ):
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not beta >= 0:
            raise ValueError(f"beta={beta!r}: expected a number >= 0")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling={pooling!r}: expected one of {', '.join(POOLINGS)}")
        super().__init__(model, tokenizer, alignment="left", bos_token_id=bos_token_id, add_bos=add_bos)
        self.beta = float(beta)
        self.pooling: Pooling = pooling

    def encode(self, windows: Sequence[Tokens], alignment: Alignment | None = None) -> EncodedContext:
        """The windows, encoded as PCW encodes them (each window's positions start at 0)."""
        if alignment not in (None, "left"):
            raise ValueError(f"alignment={alignment!r}: NBCE reads each window from position 0 (left only)")
        return super().encode(windows, "left")

    def _rows(self, context: EncodedContext) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 + B, L) context keys each row sees and (1 + B,) its first position: row 0 sees only the shared
        BOS (or nothing), row 1 + k window k (and the shared BOS) and starts after it, at len_k."""
        layout = context.layout
        device = self.adapter.device
        window_of = context.window_of.to(device)
        keys = torch.zeros(1 + context.num_windows, context.num_tokens, dtype=torch.bool, device=device)
        starts = [1 if layout.shared_bos else 0]
        if layout.shared_bos:
            keys[0, 0] = True  # the longest window's BOS, first in merged order
        for k, w in enumerate(layout.windows):
            keys[1 + k] = (window_of == k) | (window_of == -1)
            starts.append(len(w))
        return keys, torch.tensor(starts, dtype=torch.long, device=device)

    def _rows_per_query(self, context: EncodedContext) -> int:
        return 1 + context.num_windows

    def _row_queries(self, context: EncodedContext, batch: int) -> QueryBatch:
        keys, starts = self._rows(context)
        per = keys.shape[0]
        return QueryBatch(self.adapter, context, batch * per, keys.repeat(batch, 1), starts.repeat(batch))

    def _queries(self, context: EncodedContext, batch: int) -> _Combined:
        return _Combined(self._row_queries(context, batch), self._rows_per_query(context), self.beta, self.pooling)

    def _label_scores(self, context, ids, label_ids, batch_size) -> torch.Tensor:
        """(inputs, labels) combined log-probabilities of the labels (label-level NBCE)."""
        logliks = self._label_logliks(context, ids, label_ids, batch_size)  # (N, C, 1 + B)
        per_window = torch.log_softmax(logliks, dim=1).transpose(1, 2)  # (N, 1 + B, C): p_k over the labels
        return nbce_combine(per_window, self.beta, self.pooling)


class _Combined:
    """A query batch whose `extend` gives NBCE's combined log-probabilities (B, T, V) over its 1 + B rows each."""

    def __init__(self, rows: QueryBatch, per: int, beta: float, pooling: Pooling):
        self.rows, self.per, self.beta, self.pooling = rows, per, beta, pooling

    def extend(self, rows: Sequence[Sequence[int]], pad_token_id: int = 0) -> torch.Tensor:
        logits = self.rows.extend([r for r in rows for _ in range(self.per)], pad_token_id=pad_token_id)
        logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
        logp = logp.view(len(rows), self.per, *logp.shape[1:]).transpose(1, 2)  # (B, T, 1 + B, V)
        return nbce_combine(logp, self.beta, self.pooling)
