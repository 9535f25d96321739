"""An encoded context: the merged per-layer key/value caches of all windows, ready for any number of queries."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .layout import WindowLayout


@dataclass(frozen=True, eq=False)
class EncodedContext:
    """Read-only by contract: queries build their own cache around these tensors and never write them.

    keys[i] / values[i]: (1, kv_heads_i, L, head_dim) for attention layer i, None for a layer that holds no
    cache (a Puzzle child's no-op or linear attention). L = number of merged context tokens.
    """

    layout: WindowLayout
    keys: tuple[torch.Tensor | None, ...]
    values: tuple[torch.Tensor | None, ...]
    token_ids: torch.Tensor
    """(L,) the merged context's token ids, in cache order."""
    positions: torch.Tensor
    """(L,) position id of each merged token (for sliding-window layers)."""
    window_of: torch.Tensor
    """(L,) which window each merged token came from; -1 for the shared BOS."""

    @property
    def num_windows(self) -> int:
        return len(self.layout.windows)

    @property
    def max_window_len(self) -> int:
        """M: the first task token's position."""
        return self.layout.max_window_len

    @property
    def num_tokens(self) -> int:
        """L: tokens held in the merged cache."""
        return int(self.token_ids.numel())

    def __repr__(self) -> str:
        return (
            f"EncodedContext(windows={self.num_windows}, tokens={self.num_tokens}, max_window_len="
            f"{self.max_window_len}, shared_bos={self.layout.shared_bos}, alignment={self.layout.alignment!r})"
        )

    def nbytes(self) -> int:
        """Bytes of the merged key/value tensors."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values) if t is not None)
