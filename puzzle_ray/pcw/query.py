"""A batch of queries against one encoded context: their own cache, key validity and positions.

Every query row sees every context token (the shared BOS and all windows), then its own tokens causally.
Rows are right-padded; padded keys are invalid for everyone, so rows of different lengths can grow
independently (each generated token goes to the row's next position, after its padding in the cache).

Variants narrow this per row: `context_keys` (B, K) limits which context tokens a row sees (naive-Bayes rows
see one window each), `first_positions` (B,) where its tokens start, and `context_bias` (B, K) is added to its
scores on the context keys (attention rescaling); a row's own tokens are never biased.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .adapter import ModelAdapter
from .context import EncodedContext


class QueryBatch:
    def __init__(
        self,
        adapter: ModelAdapter,
        context: EncodedContext,
        batch: int,
        context_keys: torch.Tensor | None = None,
        first_positions: torch.Tensor | None = None,
        context_bias: torch.Tensor | None = None,
    ):
        if batch < 1:
            raise ValueError("a query batch needs at least one row")
        self.adapter = adapter
        self.batch = batch
        self.first_position = context.max_window_len  # M: task token i sits at M + i
        self.cache = adapter.seeded_cache(context.keys, context.values, batch)
        device = adapter.device
        num_ctx = context.num_tokens
        if context_keys is None:
            context_keys = torch.ones(batch, num_ctx, dtype=torch.bool, device=device)
        self.key_valid = context_keys.to(device)  # (B, K)
        self.key_pos = context.positions.to(device).unsqueeze(0).expand(batch, num_ctx)  # (B, K)
        if first_positions is None:
            first_positions = torch.full((batch,), self.first_position, dtype=torch.long, device=device)
        self.next_position = first_positions.to(device)  # (B,)
        self.key_bias = None if context_bias is None else context_bias.to(device)  # (B, K) or None

    def extend(self, rows: Sequence[Sequence[int]], pad_token_id: int = 0) -> torch.Tensor:
        """Feed each row's tokens (rows may differ in length; an empty row feeds nothing). Returns logits
        (B, T, V), T = the longest row; row b's logits are valid for its first len(rows[b]) entries."""
        if len(rows) != self.batch:
            raise ValueError(f"expected {self.batch} rows, got {len(rows)}")
        device = self.adapter.device
        lengths = torch.tensor([len(r) for r in rows], device=device)
        t = int(lengths.max())
        if t == 0:
            raise ValueError("nothing to feed: every row is empty")
        ids = torch.full((self.batch, t), pad_token_id, dtype=torch.long, device=device)
        for b, r in enumerate(rows):
            if len(r):
                ids[b, : len(r)] = torch.as_tensor(list(r), dtype=torch.long, device=device)
        steps = torch.arange(t, device=device)
        valid = steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        # Padding gets the row's first new position: any in-range value will do, its key is never attended.
        positions = self.next_position.unsqueeze(1) + torch.where(valid, steps.unsqueeze(0), 0)  # (B, T)
        key_valid = torch.cat([self.key_valid, valid], dim=1)  # (B, K + T)
        key_pos = torch.cat([self.key_pos, positions], dim=1)
        allowed = key_valid.unsqueeze(1).repeat(1, t, 1)  # (B, T, K + T)
        causal = torch.ones(t, t, dtype=torch.bool, device=device).tril()
        allowed[:, :, -t:] &= causal  # new tokens: causal among themselves; everything older is visible
        key_bias = None
        if self.key_bias is not None:  # the row's own tokens are not biased
            key_bias = torch.cat([self.key_bias, self.key_bias.new_zeros(self.batch, t)], dim=1)
        logits = self.adapter.forward(ids, positions, allowed, key_pos, self.cache, bias=key_bias)
        self.key_valid, self.key_pos, self.key_bias = key_valid, key_pos, key_bias
        self.next_position = self.next_position + lengths
        return logits
