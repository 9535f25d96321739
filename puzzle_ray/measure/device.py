"""Timing units on the device this process owns (what one Ray task of the fleet runs; callable directly too).

Block units are measured differentially: per repeat, the stack of N copies and the stack of N no-op blocks
are timed back to back (alternating order), and the unit's cost is median(difference) / N, with the
inter-quartile range of the differences / N as its spread. The non-block unit is timed absolutely. The
units of one call take their samples in shared rounds (`MeasureConfig.interleave`).

N grows with the unit's size shrinking (`units.stack_depth_for`): a stack whose weights fit in a cache that
the full model overflows would make memory-bound decode look cheaper than it is in the model.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import torch

from ..arch.config import PuzzleConfig
from .config import MeasureConfig, Scenario
from .hardware import device_memory_bytes, fingerprint
from .stacks import CacheFlush, DecodeWorkload, PrefillWorkload, block_stack, non_block_model
from .timing import DeviceTimer, paired_sample, quiet_gc, single_sample, summarize
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
) -> list[dict[str, Any]]:
    """One entry per (unit, batch size) in `units` x `scenario.batch_sizes` order.

    Each entry holds `prefill_ms`, `decode_ms` (per decode step), their `*_iqr`, and the fingerprint of
    the device; or `fits: False` with the reason when the batch would not fit the device's memory.

    With `config.interleave` the units are timed in rounds, one sample of each per round, so that a change of
    the machine's speed during the measurement (another tenant, clock or thermal changes) moves every unit
    alike instead of making the units timed in a slow minute look expensive. That holds every unit's stack
    in memory at once; when their estimated footprints together exceed the device, the units are timed one
    after the other instead.
    """
    for unit in units:
        if unit.is_no_op:
            raise ValueError("a no-op unit costs nothing by construction and is never timed")
    capacity = device_memory_bytes(config, device)
    timer, fp = DeviceTimer(device, config.cpu_clock), fingerprint(device)
    results: dict[tuple[int, int], dict[str, Any]] = {}
    with torch_threads(config.torch_threads if torch.device(device).type == "cpu" else None):
        for batch in scenario.batch_sizes:
            estimates = [_estimate(parent, u, scenario, config, batch) for u in units]
            fitting = [i for i, e in enumerate(estimates) if e <= capacity]
            for i in set(range(len(units))) - set(fitting):
                results[(i, batch)] = does_not_fit(units[i], batch, estimates[i], capacity,
                                                   "estimated footprint exceeds the device memory")
            together = config.interleave and sum(estimates[i] for i in fitting) <= capacity
            groups = [fitting] if together else [[i] for i in fitting]
            for group in filter(None, groups):
                results.update(_time_group(parent, units, group, batch, scenario, config, device, timer, capacity))
                _release(device)
    out = []
    for i in range(len(units)):
        for batch in scenario.batch_sizes:
            entry = results[(i, batch)]
            if entry["fits"]:
                entry.update(fp)
            out.append(entry)
    return out


def _estimate(parent, unit: TimedBlock, scenario: Scenario, config: MeasureConfig, batch: int) -> int:
    depth = stack_depth_for(unit, parent, scenario.dtype, config)
    return unit.peak_bytes_estimate(parent, scenario.dtype, batch, scenario.prefill_len, scenario.total_len, depth)


def _time_group(parent, units, group, batch, scenario, config, device, timer, capacity) -> dict[tuple[int, int], dict]:
    """Time `units[i]` for i in `group` at one batch size, in shared rounds."""
    baselines: dict[int, Any] = {}  # depth -> stack of no-op blocks (no weights: cheap to keep)
    try:
        samplers = {i: _Sampler(units[i], parent, batch, scenario, config, device, baselines) for i in group}
        for r in range(config.warmup + config.repeats):
            order = group[r % len(group):] + group[: r % len(group)]
            with quiet_gc():
                for i in order:
                    samplers[i].sample(timer, r, record=r >= config.warmup)
        return {(i, batch): s.entry() for i, s in samplers.items()}
    except torch.OutOfMemoryError as e:
        log.warning("timing %d unit(s) at batch %d ran out of device memory: %s", len(group), batch, e)
        samplers = {}  # drop the stacks before retrying
        _release(device)
        if len(group) > 1:  # try them one at a time before calling any of them too big
            out = {}
            for i in group:
                out.update(_time_group(parent, units, [i], batch, scenario, config, device, timer, capacity))
            return out
        (i,) = group
        return {(i, batch): does_not_fit(units[i], batch, _estimate(parent, units[i], scenario, config, batch),
                                         capacity, "out of device memory")}


class _Sampler:
    """The prefill and decode workloads of one unit at one batch size, sampled once per round.

    Block units are timed differentially (stack of N copies against N no-op blocks, back to back, the order
    alternating between rounds); the non-block unit absolutely, from evicted caches (in the model, every layer
    runs between two uses of the embeddings and LM head), one decode step per sample so each starts cold.
    """

    def __init__(self, unit, parent, batch, scenario, config, device, baselines):
        self.unit, self.batch, self.config = unit, batch, config
        seed = config.seed
        self.prefills: list[tuple[float, float]] = []
        self.decodes: list[tuple[float, float]] = []
        if unit.is_non_block:
            model = non_block_model(parent, scenario, device, seed)
            flush = CacheFlush(flush_bytes(parent, scenario.dtype, config), device) if config.min_stack_mib else None
            self.prefill = PrefillWorkload(model, batch, scenario, device, seed, flush)
            self.decode = DecodeWorkload(model, batch, scenario, device, seed, 1, flush)
            return
        self.depth = stack_depth_for(unit, parent, scenario.dtype, config)
        if self.depth not in baselines:
            baselines[self.depth] = block_stack(parent, NO_OP_BLOCK, self.depth, scenario, device, seed)
        model, k = block_stack(parent, unit.block, self.depth, scenario, device, seed), config.decode_steps_per_sample
        self.prefill = PrefillWorkload(model, batch, scenario, device, seed)
        self.decode = DecodeWorkload(model, batch, scenario, device, seed, k)
        self.base_prefill = PrefillWorkload(baselines[self.depth], batch, scenario, device, seed)
        self.base_decode = DecodeWorkload(baselines[self.depth], batch, scenario, device, seed, k)

    def sample(self, timer: DeviceTimer, r: int, record: bool) -> None:
        if self.unit.is_non_block:
            p = (single_sample(timer, self.prefill), 0.0)
            d = (single_sample(timer, self.decode), 0.0)
        else:
            p = paired_sample(timer, self.base_prefill, self.prefill, flip=r % 2 == 1)
            d = paired_sample(timer, self.base_decode, self.decode, flip=r % 2 == 1)
        if record:
            self.prefills.append(p)
            self.decodes.append(d)

    def entry(self) -> dict[str, Any]:
        if self.unit.is_non_block:
            p, d = summarize([t for t, _ in self.prefills]), summarize([t for t, _ in self.decodes])
            figures = {"prefill_ms": p.median, "prefill_ms_iqr": p.iqr, "decode_ms": d.median, "decode_ms_iqr": d.iqr}
        else:
            n, steps = self.depth, self.decode.steps
            p = summarize([diff / n for diff, _ in self.prefills])
            d = summarize([diff / (n * steps) for diff, _ in self.decodes])
            figures = {
                # A sub-block cannot cost less than nothing: a negative median is noise around a tiny cost.
                "prefill_ms": max(p.median, 0.0),
                "prefill_ms_iqr": p.iqr,
                "decode_ms": max(d.median, 0.0),
                "decode_ms_iqr": d.iqr,
                "stack_prefill_ms": summarize([t for _, t in self.prefills]).median,
                "stack_decode_ms": summarize([t for _, t in self.decodes]).median / steps,
                "stack_depth": n,
                "decode_context": self.decode.context + (steps - 1) / 2,
            }
        return {"batch_size": self.batch, "fits": True, **figures, "repeats": self.config.repeats}
