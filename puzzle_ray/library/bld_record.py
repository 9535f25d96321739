"""What BLD recorded about one library entry (`variant["bld"]` in `block_library.json`).

On disk it is a flat object, e.g.

    {"nmse_init": 0.31, "nmse_final": 0.08, "tokens_seen": 2048, "is_parent": false,
     "ffn_nmse_init": 0.31, "ffn_nmse_final": 0.08, "ffn_reverted": false}

with one `<part>_...` group per trained sub-block (`attention`, `ffn`, or `block` when both halves train
together). Older or hand-written records may hold only some keys (e.g. `{"is_parent": true}`): every field has
a default, and keys not known here are kept in `extra`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_PART_KEYS = ("nmse_init", "nmse_final", "reverted")


@dataclass(frozen=True)
class SubBlockBLD:
    """One trained sub-block's figures."""

    nmse_init: float | None = None
    """Normalised MSE of the sub-block's output against the parent's, at initialisation."""
    nmse_final: float | None = None
    """The same after BLD."""
    reverted: bool = False
    """BLD made it worse, so the initialised weights were kept."""


@dataclass(frozen=True)
class BLDRecord:
    nmse_init: float | None = None
    """Normalised MSE of the entry's block output against the parent block's, at initialisation."""
    nmse_final: float | None = None
    """The same after BLD."""
    tokens_seen: int = 0
    """Training tokens the entry's trained sub-blocks saw (0 when nothing of it was trained)."""
    is_parent: bool = False
    """The entry is the parent's own block (both halves the parent's)."""
    parts: dict[str, SubBlockBLD] = field(default_factory=dict)
    """Per trained sub-block (`attention`, `ffn` or `block`), its own figures."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys not known here, kept as read."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"nmse_init": self.nmse_init, "nmse_final": self.nmse_final,
                               "tokens_seen": self.tokens_seen, "is_parent": self.is_parent}
        for part, figures in self.parts.items():
            out.update({f"{part}_{k}": getattr(figures, k) for k in _PART_KEYS})
        return {**out, **self.extra}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BLDRecord:
        data = dict(data)
        top = {k: data.pop(k) for k in ("nmse_init", "nmse_final", "tokens_seen", "is_parent") if k in data}
        parts: dict[str, dict[str, Any]] = {}
        for key in list(data):
            for suffix in _PART_KEYS:
                if key.endswith(f"_{suffix}"):
                    parts.setdefault(key[: -len(suffix) - 1], {})[suffix] = data.pop(key)
                    break
        return cls(**top, parts={p: SubBlockBLD(**v) for p, v in parts.items()}, extra=data)
