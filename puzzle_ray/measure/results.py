"""Measured units composed into the library's per-variant stats (the contract of `library/record.py`).

A variant (attention, FFN) costs its attention unit plus its FFN unit; no-op halves cost exactly 0. Spreads
add in quadrature (the two were measured independently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..arch.stats import attention_params, ffn_params, kv_bytes_per_token
from .config import MeasureConfig, Scenario
from .timed_block import TimedBlock, sub_blocks

_TIMES = ("prefill_ms", "prefill_ms_iqr", "decode_ms", "decode_ms_iqr")


class MeasureError(RuntimeError):
    """Measurement could not be completed; the message names the units and the cause."""


@dataclass
class Measurements:
    """Timings of units on one hardware, for one scenario: what `measure_blocks` returns."""

    parent: PuzzleConfig
    scenario: Scenario
    config: MeasureConfig
    entries: dict[tuple[str, int], dict[str, Any]]
    """(unit key, batch size) -> measured entry (`prefill_ms`, `decode_ms`, ... or `fits: False`)."""
    fingerprint: dict[str, Any]
    """`hardware` and `software` of the device that measured."""
    num_measured: int = 0
    """(unit, batch) entries timed by this call (0 when everything came from the cache)."""
    num_cached: int = 0
    num_tasks: int = 0
    failures: list[str] = field(default_factory=list)
    """One line per unit whose task failed (the others are complete and cached)."""

    def entry(self, unit: TimedBlock, batch_size: int) -> dict[str, Any]:
        if unit.is_no_op:
            return {"batch_size": batch_size, "fits": True, **dict.fromkeys(_TIMES, 0.0)}
        key = (unit.key(self.parent), batch_size)
        if key not in self.entries:
            raise MeasureError(f"{unit.label(self.parent)} was not measured at batch size {batch_size}")
        return self.entries[key]

    def _sized(self, unit: TimedBlock, batch: int) -> dict[str, Any]:
        s = self.scenario
        return {"memory_mib": unit.memory_mib(self.parent, s.dtype, batch, s.total_len)}

    def block_stats(self, block: BlockConfig) -> dict[str, Any]:
        """The stats of one library variant: flat keys at the first batch size, every size in `by_batch`."""
        parent, s = self.parent, self.scenario
        att, ffn = sub_blocks(block)
        by_batch = {}
        for batch in s.batch_sizes:
            a, f = self.entry(att, batch), self.entry(ffn, batch)
            stats = {**self._sized(TimedBlock(block), batch)}
            stats["attention_memory_mib"] = self._sized(att, batch)["memory_mib"]
            stats["ffn_memory_mib"] = self._sized(ffn, batch)["memory_mib"]
            if a["fits"] and f["fits"]:
                for name, e in (("attention", a), ("ffn", f)):
                    stats[f"{name}_prefill_ms"] = e["prefill_ms"]
                    stats[f"{name}_decode_ms"] = e["decode_ms"]
                    stats[f"{name}_runtime_ms"] = e["prefill_ms"] + s.decode_len * e["decode_ms"]
                stats.update(_combine(a, f, s.decode_len))
            else:
                stats["fits"] = False
            by_batch[str(batch)] = stats
        fixed = {
            "num_params": attention_params(parent, block) + ffn_params(parent, block),
            "attention_num_params": attention_params(parent, block),
            "ffn_num_params": ffn_params(parent, block),
            "kv_bytes_per_token": kv_bytes_per_token(parent, block, s.dtype),
            "num_kv_heads": block.attention.num_kv_heads(parent.num_attention_heads),
            "ffn_intermediate_size": block.ffn.kind.size(block.ffn) or 0,
        }
        return {**fixed, **by_batch[str(s.batch_sizes[0])], "by_batch": by_batch}

    def non_block_stats(self) -> dict[str, Any]:
        """`meta["non_block"]`: embeddings, final norm, LM head and the model's fixed per-call overheads."""
        s, unit = self.scenario, TimedBlock(None)
        by_batch = {}
        for batch in s.batch_sizes:
            e = self.entry(unit, batch)
            stats = self._sized(unit, batch)
            if e["fits"]:
                stats.update(_combine(e, None, s.decode_len))
            else:
                stats["fits"] = False
            by_batch[str(batch)] = stats
        fixed = {"num_params": unit.num_params(self.parent), "kv_bytes_per_token": 0}
        return {**fixed, **by_batch[str(s.batch_sizes[0])], "by_batch": by_batch}

    def summary(self) -> dict[str, Any]:
        """What the library's meta records about how it was measured."""
        return {
            **self.fingerprint,
            "method": self.config.method(),
            "device": self.config.device,
            "accelerator_type": self.config.accelerator_type,
            "unit": "sub-block (attention or FFN alone), differential stack of N minus N no-op blocks",
        }

    def table(self) -> list[dict[str, Any]]:
        """One row per measured (unit, batch): for printing and MLflow tables."""
        rows = []
        for (_, batch), e in sorted(self.entries.items(), key=lambda kv: (kv[1].get("unit", ""), kv[0][1])):
            row = {"unit": e.get("unit", "?"), "batch": batch}
            row.update({k: e[k] for k in _TIMES if k in e})
            row["fits"] = e["fits"]
            rows.append(row)
        return rows


BLOCK_STATS = frozenset({
    "prefill_ms", "decode_ms", "runtime_ms", "prefill_ms_iqr", "decode_ms_iqr", "memory_mib",
    "attention_prefill_ms", "attention_decode_ms", "attention_runtime_ms", "attention_memory_mib",
    "ffn_prefill_ms", "ffn_decode_ms", "ffn_runtime_ms", "ffn_memory_mib",
    "num_params", "attention_num_params", "ffn_num_params", "kv_bytes_per_token", "num_kv_heads",
    "ffn_intermediate_size",
})
"""The numeric stats `Measurements.block_stats` gives every variant (what `stats.<name>` can name in a search)."""


def _combine(a: dict[str, Any], f: dict[str, Any] | None, decode_len: int) -> dict[str, float]:
    parts = [a] if f is None else [a, f]
    prefill = sum(p["prefill_ms"] for p in parts)
    decode = sum(p["decode_ms"] for p in parts)
    return {
        "prefill_ms": prefill,
        "decode_ms": decode,
        "runtime_ms": prefill + decode_len * decode,
        "prefill_ms_iqr": math.sqrt(sum(p["prefill_ms_iqr"] ** 2 for p in parts)),
        "decode_ms_iqr": math.sqrt(sum(p["decode_ms_iqr"] ** 2 for p in parts)),
    }
