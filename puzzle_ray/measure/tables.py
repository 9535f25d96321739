"""The per-variant table of a measured library, as printed by `puzzle-ray measure` and `benchmarks/gpu_check.py`."""

from __future__ import annotations

from ..library.record import Library


def variants_table(library: Library, batch: int, title: str, layer: int = 0):
    """A rich Table of one layer's variants at `batch`: prefill, decode and runtime ms, memory, params, KV."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("variant", "prefill ms", "decode ms", "runtime ms", "memory MiB", "params", "KV B/token"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for v in library.layers[layer].values():
        s = v.stats_for_batch(batch)
        fits = s.get("fits", True) is not False
        times = (f"{s['prefill_ms']:.3f}", f"{s['decode_ms']:.4f}", f"{s['runtime_ms']:.2f}") if fits else (
            "does not fit", "", "")
        table.add_row(v.name, *times, f"{s['memory_mib']:.1f}", f"{s['num_params']:,}", str(s["kv_bytes_per_token"]))
    return table
