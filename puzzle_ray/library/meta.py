"""Facts about a whole block library (`library_meta.json`): the parent's shape, how it was built, measured, scored.

Every field is optional because each stage adds its own: the library stage writes the parent's shape and the
BLD settings, `measure` the scenario and the non-block part's costs, `score` the scoring summary; the published
layout's side files supply `scenario` and `parent_block_stats`. Keys this class does not know are kept in
`extra` and written back where they were, so libraries written by other versions (or by hand) round-trip
byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

COST_KEYS = ("scenario", "hardware", "measurement")
"""Facts that belong to the costs: when costs are laid over scores, the measured library's win."""


@dataclass
class LibraryMeta:
    num_attention_heads: int | None = None
    """The parent's query heads: maps KV-head counts to `n_heads_in_group` (and back, in variant names)."""
    hidden_size: int | None = None
    """The parent's hidden size: resolves FFN widths given as fractions and serialises block configs."""
    num_layers: int | None = None
    """The parent's decoder layers (the library has one entry per layer)."""
    parent_key: str | None = None
    """Artifact-store key of the parent's folder: scoring and realisation load the parent's weights from it."""
    store_url: str | None = None
    """The artifact store the library was built in (where `parent_key` and the variants' weights live)."""
    parent_config: dict[str, Any] | None = None
    """The parent's config (`PuzzleConfig.to_dict()`): its block configs identify each layer's parent variant."""
    search_space: dict[str, Any] | None = None
    """The search space the variants were expanded from."""
    bld: dict[str, Any] | None = None
    """The BLD settings the variants were trained with."""
    scenario: dict[str, Any] | None = None
    """The scenario the costs were measured for (batch sizes, prefill / decode lengths, dtype; or the published
    `measurement_info.json`: `batch_size`, `sequence_length`, ...)."""
    non_block: dict[str, Any] | None = None
    """Costs of the part outside the blocks (embeddings, final norm, LM head), with the variants' stat keys."""
    measurement: dict[str, Any] | None = None
    """How the costs were measured (hardware, software, method, unit)."""
    scoring: dict[str, Any] | None = None
    """How the metrics were computed: the metrics, the tokens scored and the parent's own figures."""
    parent_block_stats: dict[str, Any] | None = None
    """One parent block's stats (the published `parent_block_stats.json`), when no variant is the parent's."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys not known here, kept as read."""
    _order: tuple[str, ...] = field(default=(), repr=False, compare=False)
    """The keys as they were read, so a written file keeps its key order."""

    @classmethod
    def from_json(cls, data: dict[str, Any] | LibraryMeta | None) -> LibraryMeta:
        if isinstance(data, LibraryMeta):
            return data
        data = dict(data or {})
        order = tuple(data)
        known = {k: data.pop(k) for k in order if k in _KNOWN}
        return cls(**known, extra=data, _order=order)

    def to_json(self) -> dict[str, Any]:
        """The `library_meta.json` object: keys in the order read, then new ones (fields first, then extras)."""
        out: dict[str, Any] = {}
        for key in self._order:
            if key in _KNOWN:
                out[key] = getattr(self, key)
            elif key in self.extra:
                out[key] = self.extra[key]
        for f in _FIELDS:
            if f not in out and getattr(self, f) is not None:
                out[f] = getattr(self, f)
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    # -- access by JSON key, for callers (and tests) written against the plain dict -------------------------
    def __contains__(self, key: str) -> bool:
        if key in _KNOWN:
            return getattr(self, key) is not None or key in self._order
        return key in self.extra

    def keys(self):
        return self.to_json().keys()

    def __getitem__(self, key: str) -> Any:
        if key not in self:
            raise KeyError(key)
        return getattr(self, key) if key in _KNOWN else self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _KNOWN:
            setattr(self, key, value)
        else:
            self.extra[key] = value


_FIELDS = tuple(f.name for f in fields(LibraryMeta) if f.name not in ("extra", "_order"))
_KNOWN = frozenset(_FIELDS)
