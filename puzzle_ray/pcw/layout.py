"""Where every context token goes: its window, its position id, and whether it stays in the merged context.

Semantics (Ratner et al. 2023; the published reference's `PCWModelWrapper`, left alignment by default):

- window k's tokens get positions 0..len_k-1 and attend causally within their own window only;
- if every window begins with the same BOS token, that BOS is shared: one copy stays in the merged context;
  otherwise (e.g. Qwen2 tokenizers add no BOS) nothing is dropped. The reference drops the first token of every
  window but the longest unconditionally, which loses real tokens when there is no BOS; we do not;
- right alignment (the reference's `right_indentation`) shifts window k by M - len_k so that all windows end at
  position M - 1; each window is still encoded with its own BOS at its shifted position, and only the longest
  window's BOS (at position 0) is kept;
- M = the longest window's length including its BOS; task token i gets position M + i.

The merged order is the reference's: the longest window first (the first of equally long ones), then the
others in their given order. Attention does not depend on the order of keys; keeping it makes float sums match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Alignment = Literal["left", "right"]


@dataclass(frozen=True)
class WindowLayout:
    """The token layout of a set of parallel windows; `plan_windows` builds it."""

    windows: tuple[tuple[int, ...], ...]
    """Token ids of each window, as given (with its BOS, if any)."""
    shifts: tuple[int, ...]
    """Position of each window's first token: 0 (left alignment) or M - len (right alignment)."""
    shared_bos: bool
    """Every window begins with the same BOS token, and only one copy of it is kept."""
    longest: int
    """Index of the longest window (the first one if several are equally long): its BOS is the one kept."""
    alignment: Alignment

    @property
    def max_window_len(self) -> int:
        """M: the longest window's length, BOS included. Task token i gets position M + i."""
        return max(len(w) for w in self.windows)

    @property
    def merge_order(self) -> tuple[int, ...]:
        """Windows in the order their tokens appear in the merged context (the reference's order)."""
        others = tuple(k for k in range(len(self.windows)) if k != self.longest)
        return (self.longest, *others)

    def kept(self) -> list[tuple[int, int]]:
        """(window, index within window) of every token of the merged context, in merged order."""
        out = []
        for k in self.merge_order:
            first = 1 if (self.shared_bos and k != self.longest) else 0
            out.extend((k, i) for i in range(first, len(self.windows[k])))
        return out

    def position(self, window: int, index: int) -> int:
        return self.shifts[window] + index


def plan_windows(
    windows: Sequence[Sequence[int]],
    bos_token_id: int | None,
    alignment: Alignment = "left",
) -> WindowLayout:
    """Lay out `windows` (token-id lists). Raises ValueError naming the bad window."""
    if len(windows) == 0:
        raise ValueError("windows: the context needs at least one window (got an empty list)")
    if alignment not in ("left", "right"):
        raise ValueError(f"alignment={alignment!r}: expected 'left' or 'right'")
    ids = tuple(tuple(int(t) for t in w) for w in windows)
    for k, w in enumerate(ids):
        if len(w) == 0:
            raise ValueError(f"windows[{k}] is empty (it tokenised to no tokens)")
    lengths = [len(w) for w in ids]
    longest = max(range(len(ids)), key=lambda k: (lengths[k], -k))
    m = lengths[longest]
    shared_bos = bos_token_id is not None and all(w[0] == bos_token_id for w in ids)
    shifts = tuple(0 if alignment == "left" else m - n for n in lengths)
    return WindowLayout(windows=ids, shifts=shifts, shared_bos=shared_bos, longest=longest, alignment=alignment)
