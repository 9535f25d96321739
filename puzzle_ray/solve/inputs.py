"""Reading a library for the search: our records and the published layout, and the scenario facts it carries.

A published library folder holds `block_library.json`, `measurement_info.json` (the scenario: batch size,
sequence length, GPU, dtype) and `parent_block_stats.json` (the parent block's stats); ours holds
`block_library.json` and `library_meta.json`. Both are read by `Library.read`; this adapter completes the meta
from the published side files, so both become one `Library` whose meta has `scenario` and, for the published
one, `parent_block_stats`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..library.record import Library, LibraryError


def load_library(
    path: str | Path, num_attention_heads: int | None = None, parent_stats: str | Path | None = None
) -> Library:
    """Read a library file (or its folder) with whatever scenario and parent facts lie beside it.

    `num_attention_heads` maps published variants (`num_kv_heads`, `ffn_intermediate_size`) to block configs;
    `parent_stats` is a `parent_block_stats.json`-style file ({"stats": {...}}) giving the parent's figures.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent

    def published_facts(meta: dict[str, Any]) -> dict[str, Any]:
        meta = dict(meta)
        if "scenario" not in meta and (folder / "measurement_info.json").is_file():
            meta["scenario"] = _read_json(folder / "measurement_info.json")
        parent_file = Path(parent_stats) if parent_stats else folder / "parent_block_stats.json"
        if parent_stats and not parent_file.is_file():
            raise FileNotFoundError(f"{parent_file}: no such parent stats file")
        if parent_file.is_file():
            meta["parent_block_stats"] = _parent_block_stats(parent_file)
        if num_attention_heads is not None:
            known = meta.get("num_attention_heads")
            if known is not None and known != num_attention_heads:
                raise LibraryError(f"num_attention_heads={num_attention_heads} disagrees with the library's {known}")
            meta["num_attention_heads"] = num_attention_heads
        return meta

    return Library.read(path, adapt_meta=published_facts)


def available_batch_sizes(library: Library) -> list[int] | None:
    """Batch sizes with stats for every variant (`stats.by_batch`), else the scenario's, else None (unknown)."""
    found: set[str] | None = None
    for i, layer in enumerate(library.layers):
        for name, v in layer.items():
            keys = set(v.stats.get("by_batch") or {})
            if found is None:
                found = keys
            elif keys != found:
                raise LibraryError(
                    f"layer_{i} / {name!r}: stats.by_batch has batch sizes {sorted(keys, key=int)}, "
                    f"other variants have {sorted(found, key=int)}"
                )
    if found:
        return sorted(int(b) for b in found)
    scenario = library.meta.scenario or {}
    if scenario.get("batch_sizes"):
        return [int(b) for b in scenario["batch_sizes"]]
    if scenario.get("batch_size"):
        return [int(scenario["batch_size"])]
    return None


def reference_batch_size(library: Library, parent_batch_size: int | None = None) -> int | None:
    """The batch size at which the parent's figures are taken: `parent_batch_size`, else the scenario's first
    (the library's flat stats), so that a relative limit means one budget at every batch size tried."""
    if parent_batch_size is not None:
        return parent_batch_size
    scenario = library.meta.scenario or {}
    if scenario.get("batch_sizes"):
        return int(scenario["batch_sizes"][0])
    if scenario.get("batch_size"):
        return int(scenario["batch_size"])
    known = available_batch_sizes(library)
    return known[0] if known else None


def scenario_tokens(library: Library) -> int | None:
    """Tokens per sequence of the scenario (its `sequence_length`, else prefill + decode lengths), if known."""
    scenario = library.meta.scenario or {}
    if scenario.get("sequence_length"):
        return int(scenario["sequence_length"])
    for prefill, decode in (("prefill_len", "decode_len"), ("prefill_length", "decode_length")):
        if scenario.get(prefill) and scenario.get(decode):
            return int(scenario[prefill]) + int(scenario[decode])
    return None


def _parent_block_stats(file: Path) -> dict[str, Any]:
    data = _read_json(file)
    stats = data.get("stats") if isinstance(data, dict) else None
    if not isinstance(stats, dict):
        raise LibraryError(f"{file}: expected {{'stats': {{...}}}} (the parent block's stats)")
    return stats


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise LibraryError(f"{file}: not valid JSON ({e})") from None
