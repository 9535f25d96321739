"""Timing units on the device this process owns (what one Ray task of the fleet runs; callable directly too).

Block units are measured differentially: per repeat, the stack of N copies and the stack of N no-op blocks
are timed back to back (alternating order), and the unit's cost is median(difference) / N, with the
inter-quartile range of the differences / N as its spread. The non-block unit is timed absolutely.

N grows with the unit's size shrinking (`units.stack_depth_for`): a stack whose weights fit in a cache that
the full model overflows would make memory-bound decode look cheaper than it is in the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import torch

from ..arch.config import PuzzleConfig
from .config import MeasureConfig, Scenario
from .hardware import device_memory_bytes, fingerprint
from .stacks import CacheFlush, DecodeWorkload, PrefillWorkload, block_stack, non_block_model
from .timing import DeviceTimer, paired_differences, repeated, summarize
from .timed_block import MIB, NO_OP_BLOCK, TimedBlock, flush_bytes, stack_depth_for

log = logging.getLogger(__name__)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Fix torch's CPU thread count while timing (Ray and other libraries may have set something else)."""
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _release(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def does_not_fit(unit: TimedBlock, batch_size: int, estimate: int, capacity: int, reason: str) -> dict[str, Any]:
    return {
        "batch_size": batch_size,
        "fits": False,
        "estimated_peak_mib": round(estimate / MIB, 3),
        "device_memory_mib": round(capacity / MIB, 3),
        "reason": reason,
    }


def measure_units_on_device(
    parent: PuzzleConfig,
    units: list[TimedBlock],
    scenario: Scenario,
    config: MeasureConfig,
    device: str,
    on_done: Callable[[TimedBlock], None] | None = None,
) -> list[dict[str, Any]]:
    """One entry per (unit, batch size) in `units` x `scenario.batch_sizes` order.

    Each entry holds `prefill_ms`, `decode_ms` (per decode step), their `*_iqr`, and the fingerprint of
    the device; or `fits: False` with the reason when the batch would not fit the device's memory.
    """
    capacity = device_memory_bytes(config, device)
    timer = DeviceTimer(device, config.cpu_clock)
    fp = fingerprint(device)
    seed = config.seed
    results: list[dict[str, Any]] = []
    baselines: dict[int, Any] = {}  # depth -> stack of no-op blocks (no weights: cheap to keep)
    with torch_threads(config.torch_threads if torch.device(device).type == "cpu" else None):
        for unit in units:
            if unit.is_no_op:
                raise ValueError("a no-op unit costs nothing by construction and is never timed")
            depth = stack_depth_for(unit, parent, scenario.dtype, config)
            if depth not in baselines:
                baselines[depth] = block_stack(parent, NO_OP_BLOCK, depth, scenario, device, seed)
            baseline = baselines[depth]
            model = None
            for batch in scenario.batch_sizes:
                estimate = unit.peak_bytes_estimate(
                    parent, scenario.dtype, batch, scenario.prefill_len, scenario.total_len, depth
                )
                if estimate > capacity:
                    results.append(
                        does_not_fit(unit, batch, estimate, capacity, "estimated footprint exceeds the device memory")
                    )
                    continue
                try:
                    if model is None:
                        model = (
                            non_block_model(parent, scenario, device, seed)
                            if unit.is_non_block
                            else block_stack(parent, unit.block, depth, scenario, device, seed)
                        )
                    entry = _time_unit(unit, model, baseline, depth, parent, batch, scenario, config, device, timer)
                except torch.OutOfMemoryError as e:
                    log.warning("%s at batch %d ran out of device memory: %s", unit.label(parent), batch, e)
                    entry = does_not_fit(unit, batch, estimate, capacity, "out of device memory")
                    _release(device)
                entry.update(fp)
                results.append(entry)
            del model
            _release(device)
            if on_done:
                on_done(unit)
    return results


def _time_unit(unit, model, baseline, depth, parent, batch, scenario, config, device, timer) -> dict[str, Any]:
    seed = config.seed
    if unit.is_non_block:
        # In the model, every layer runs between two uses of the embeddings and LM head: start each sample
        # from evicted caches, and time single decode steps so that each one starts cold.
        flush = CacheFlush(flush_bytes(parent, scenario.dtype, config), device) if config.min_stack_mib else None
        prefill = PrefillWorkload(model, batch, scenario, device, seed, flush)
        decode = DecodeWorkload(model, batch, scenario, device, seed, 1, flush)
        p = summarize(repeated(timer, prefill, config.warmup, config.repeats))
        d = summarize(repeated(timer, decode, config.warmup, config.repeats))
        figures = {"prefill_ms": p.median, "prefill_ms_iqr": p.iqr, "decode_ms": d.median, "decode_ms_iqr": d.iqr}
    else:
        k, n = config.decode_steps_per_sample, depth
        prefill = PrefillWorkload(model, batch, scenario, device, seed)
        decode = DecodeWorkload(model, batch, scenario, device, seed, k)
        steps = decode.steps
        base_prefill = PrefillWorkload(baseline, batch, scenario, device, seed)
        base_decode = DecodeWorkload(baseline, batch, scenario, device, seed, k)
        p_diff, p_tot = paired_differences(timer, base_prefill, prefill, config.warmup, config.repeats)
        d_diff, d_tot = paired_differences(timer, base_decode, decode, config.warmup, config.repeats)
        p, d = summarize([x / n for x in p_diff]), summarize([x / (n * steps) for x in d_diff])
        figures = {
            # A sub-block cannot cost less than nothing: a negative median is noise around a tiny cost.
            "prefill_ms": max(p.median, 0.0),
            "prefill_ms_iqr": p.iqr,
            "decode_ms": max(d.median, 0.0),
            "decode_ms_iqr": d.iqr,
            "stack_prefill_ms": summarize(p_tot).median,
            "stack_decode_ms": summarize(d_tot).median / steps,
            "stack_depth": n,
            "decode_context": decode.context + (steps - 1) / 2,
        }
    return {"batch_size": batch, "fits": True, **figures, "repeats": config.repeats}
