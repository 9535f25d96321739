"""The library record: the contract between the library, score, measure and search stages.

On disk it is the JSON layout of the published Puzzle block library, so our libraries and NVIDIA's read alike:

    {"layer_0": {"<variant name>": {"stats": {...}, "metrics": {...}, ...}, ...}, "layer_1": {...}, ...}

`stats` are costs (`num_params`, `memory_mib`, `runtime_ms`, `kv_bytes_per_token`, ... per scenario),
`metrics` are quality figures (`kl_div`, `lm_loss`, ...; lower is better unless the search is told otherwise).
Our own records add, per variant, `block_config` (the published block dict, so a solution can be realised),
`bld` (normalised MSE at initialisation and after BLD, tokens seen) and `weights` (artifact-store keys of the
trained attention / FFN sub-blocks). Facts about the whole library (the scenario, the non-block part's costs,
the parent's config) live beside it in `library_meta.json`, like the published `measurement_info.json` and
`parent_block_stats.json`.

Measured stats (written by the measure stage, read by search), per variant, for a scenario of batch sizes B,
prefill length P and decode length D:

    prefill_ms      one prefill of B x P tokens through this block
    decode_ms       one decode step of B tokens with a warm KV cache (context ~ P + D/2)
    runtime_ms      prefill_ms + D * decode_ms: the whole request batch (the published libraries' runtime_ms)
    memory_mib      parameters + B x (P + D) tokens of KV cache, at the scenario's dtype
    num_params, kv_bytes_per_token, attention_num_params, ffn_num_params, num_kv_heads, ffn_intermediate_size

The flat keys hold the scenario's first batch size; `stats["by_batch"] = {"<B>": {same keys}}` holds every batch
size, and `Variant.stats_for_batch(B)` overlays one of them. The non-block part (embeddings, final norm, LM head)
is `meta.non_block`, with the same keys.

`Library.read` and `Library.write` are the one way in and out, to an artifact store (under a prefix) or a local
folder; the published layout's side files are read by `search.inputs.load_library` through `Library.read`.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from ..arch.blocks import AttentionConfig, BlockConfig, BlockConfigError, FFNConfig
from ..arch.kinds import block_labels
from ..store import ArtifactStore
from .bld_record import BLDRecord
from .meta import COST_KEYS, LibraryMeta

LIBRARY_FILE, META_FILE = "block_library.json", "library_meta.json"


class LibraryError(ValueError):
    """A malformed library; the message names the layer and variant."""


def layer_key(i: int) -> str:
    return f"layer_{i}"


def variant_name(block: BlockConfig, num_attention_heads: int) -> str:
    """Short stable name, e.g. 'attention=kv2 ffn=768', 'attention=linear ffn=no_op'."""
    att, ffn = block_labels(block, num_attention_heads)
    return f"attention={att} ffn={ffn}"


@dataclass
class Variant:
    name: str
    stats: dict[str, float]
    metrics: dict[str, float]
    block_config: BlockConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything else stored per variant (`bld`, `weights`, ...), written back unchanged."""

    @property
    def bld(self) -> BLDRecord | None:
        """What BLD recorded for this entry (None for libraries not built by BLD, e.g. the published one)."""
        record = self.extra.get("bld")
        return BLDRecord.from_json(record) if isinstance(record, dict) else None

    @property
    def is_parent(self) -> bool:
        """Marked as the parent's own block: by BLD (`bld.is_parent`) or by a top-level `is_parent` flag."""
        bld = self.bld
        return bool(self.extra.get("is_parent")) or (bld is not None and bool(bld.is_parent))

    def stats_for_batch(self, batch_size: int | None) -> dict[str, float]:
        return stats_for_batch(self.stats, batch_size)

    def to_json(self, hidden_size: int | None) -> dict[str, Any]:
        out: dict[str, Any] = {"stats": self.stats, "metrics": self.metrics, **self.extra}
        if self.block_config is not None:
            out["block_config"] = self.block_config.to_dict(hidden_size)
        return out


@dataclass
class Library:
    layers: list[dict[str, Variant]]
    meta: LibraryMeta = field(default_factory=LibraryMeta)
    """Facts about the whole library (a plain dict given here is read as `library_meta.json`)."""

    def __post_init__(self) -> None:
        self.meta = LibraryMeta.from_json(self.meta)

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def to_json(self) -> dict[str, Any]:
        hidden = self.meta.hidden_size
        return {layer_key(i): {n: v.to_json(hidden) for n, v in layer.items()} for i, layer in enumerate(self.layers)}

    @classmethod
    def from_json(cls, data: Any, meta: dict[str, Any] | LibraryMeta | None = None) -> Library:
        if not isinstance(data, dict):
            raise LibraryError("expected an object of layers ('layer_0': {...}, ...)")
        meta = LibraryMeta.from_json(meta)
        keys = sorted(data, key=_layer_index)
        if [_layer_index(k) for k in keys] != list(range(len(keys))):
            raise LibraryError(f"layer keys must be layer_0..layer_{len(keys) - 1}, got {keys[:3]}...")
        heads = meta.num_attention_heads
        layers = []
        for key in keys:
            if not isinstance(data[key], dict) or not data[key]:
                raise LibraryError(f"{key}: no variants")
            variants = {}
            for name, entry in data[key].items():
                where = f"{key} / {name!r}"
                if not isinstance(entry, dict) or "stats" not in entry:
                    raise LibraryError(f"{where}: a variant needs a 'stats' object")
                rest = {k: v for k, v in entry.items() if k not in ("stats", "metrics", "block_config")}
                block = entry.get("block_config")
                if block:
                    block = BlockConfig.from_dict(block, _layer_index(key), heads)
                else:
                    block = _block_from_stats(entry["stats"], heads)
                variants[name] = Variant(name, dict(entry["stats"]), dict(entry.get("metrics", {})), block, rest)
            layers.append(variants)
        return cls(layers, meta)

    # -- the one way in and out --------------------------------------------------------------------------------
    @classmethod
    def read(cls, source: ArtifactStore | str | Path, prefix: str = "",
             adapt_meta: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Library:
        """Read `block_library.json` and, when present, `library_meta.json` beside it.

        `source` is an artifact store (the files under `prefix`) or a local folder (or `block_library.json`
        itself). `adapt_meta` completes the meta before the variants are parsed: the published layout's reader
        fills in the scenario, the parent's stats and the head count from its own side files.
        """
        if isinstance(source, ArtifactStore):
            base = f"{prefix}/" if prefix else ""
            where = source.uri(f"{base}{LIBRARY_FILE}")
            data = source.read_json(f"{base}{LIBRARY_FILE}")
            meta = source.read_json(f"{base}{META_FILE}") if source.exists(f"{base}{META_FILE}") else {}
        else:
            path = Path(source) / prefix if prefix else Path(source)
            file = path / LIBRARY_FILE if path.is_dir() else path
            if not file.is_file():
                raise FileNotFoundError(f"{file}: no such library file")
            data = _read_json(file)
            if not isinstance(data, dict):
                raise LibraryError(f"{file}: expected an object of layers ('layer_0': {{...}}, ...)")
            meta = _read_json(file.parent / META_FILE) if (file.parent / META_FILE).is_file() else {}
            where = str(file)
        try:
            return cls.from_json(data, adapt_meta(meta) if adapt_meta else meta)
        except (LibraryError, BlockConfigError) as e:  # say which file holds the bad entry
            raise type(e)(f"{where}: {e}") from None

    def write(self, target: ArtifactStore | str | Path, prefix: str = "") -> None:
        """Write both files: to an artifact store under `prefix` (the store's JSON form: sorted keys), or to a
        local folder, atomically (a reader never sees one file new and the other old, nor half a file)."""
        if isinstance(target, ArtifactStore):
            base = f"{prefix}/" if prefix else ""
            target.write_json(f"{base}{META_FILE}", self.meta.to_json())
            target.write_json(f"{base}{LIBRARY_FILE}", self.to_json())
            return
        folder = Path(target) / prefix if prefix else Path(target)
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".library-") as tmp:
            (Path(tmp) / LIBRARY_FILE).write_text(json.dumps(self.to_json(), indent=1) + "\n")
            (Path(tmp) / META_FILE).write_text(json.dumps(self.meta.to_json(), indent=1, default=str) + "\n")
            for name in (META_FILE, LIBRARY_FILE):
                os.replace(Path(tmp) / name, folder / name)

    # -- composition ------------------------------------------------------------------------------------------
    def with_costs(self, measured: Library) -> Library:
        """This library (scores) with `measured`'s costs laid over every variant's stats: the search's input.

        The meta is `measured`'s overlaid with this one's, except that the scenario, hardware, measurement and
        non-block costs are the measured library's (they describe the costs).
        """
        if measured.num_layers != self.num_layers:
            raise LibraryError(f"costs for {measured.num_layers} layers, but the library has {self.num_layers}")
        layers = []
        for i, (layer, costs) in enumerate(zip(self.layers, measured.layers)):
            missing = [n for n in layer if n not in costs]
            if missing:
                raise LibraryError(f"{layer_key(i)} / {missing[0]!r}: no measured costs")
            layers.append({n: replace(v, stats={**v.stats, **costs[n].stats}) for n, v in layer.items()})
        cost_meta = measured.meta.to_json()
        meta = {**cost_meta, **self.meta.to_json(), "non_block": measured.meta.non_block}
        meta.update({k: cost_meta[k] for k in COST_KEYS if k in cost_meta})
        return Library(layers, meta)

    def table(self) -> list[dict[str, Any]]:
        """One row per (layer, variant): the stats and metrics flattened, for MLflow tables and plots."""
        rows = []
        for i, layer in enumerate(self.layers):
            for v in layer.values():
                row = {"layer": i, "variant": v.name}
                row.update({f"stats.{k}": x for k, x in v.stats.items() if _is_number(x)})
                row.update({f"metrics.{k}": x for k, x in v.metrics.items() if _is_number(x)})
                row.update({f"bld.{k}": x for k, x in (v.extra.get("bld") or {}).items() if _is_number(x)})
                rows.append(row)
        return rows


def stats_for_batch(stats: dict[str, Any], batch_size: int | None) -> dict[str, float]:
    """The flat stats with the `by_batch` entry of `batch_size` laid over them (unchanged when absent)."""
    flat = {k: v for k, v in stats.items() if k != "by_batch"}
    if batch_size is None:
        return flat
    by_batch = stats.get("by_batch", {})
    if by_batch and str(batch_size) not in by_batch:
        raise LibraryError(f"no stats measured at batch size {batch_size} (have {sorted(by_batch, key=int)})")
    return {**flat, **by_batch.get(str(batch_size), {})}


def _layer_index(key: str) -> int:
    try:
        prefix, idx = key.rsplit("_", 1)
        assert prefix == "layer"
        return int(idx)
    except (ValueError, AssertionError):
        raise LibraryError(f"{key!r}: layer keys must look like 'layer_<index>'") from None


def _block_from_stats(stats: dict[str, Any], num_attention_heads: int | None) -> BlockConfig | None:
    """Published libraries carry no block configs: rebuild one from `num_kv_heads` / `ffn_intermediate_size`."""
    kv, size = stats.get("num_kv_heads"), stats.get("ffn_intermediate_size")
    if kv is None or size is None or (kv and not num_attention_heads):
        return None
    att = AttentionConfig(no_op=True) if kv == 0 else AttentionConfig(n_heads_in_group=num_attention_heads // kv)
    ffn = FFNConfig(no_op=True) if size == 0 else FFNConfig(intermediate_size=int(size))
    return BlockConfig(att, ffn)


def _read_json(file: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise LibraryError(f"{file}: not a text file (not UTF-8: {e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise LibraryError(f"{file}: not valid JSON ({e})") from None


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
