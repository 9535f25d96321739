"""The measurement fleet: Ray tasks on the target hardware, results cached in the artifact store.

    driver: probe task (hardware + software of the target) -> cache look-up per (unit, batch size)
            -> one task per group of missing units, each asking for the target's resources
    task:   times its units on its device, writes each result to the store, returns them

The cache key is the content hash of (unit shape, workload at one batch size, method, hardware name,
software versions), so equal sub-blocks in different layers, libraries and reruns are measured once. Tasks
write their results as they finish: a crashed driver loses nothing that was measured. A task that fails
(out of memory, worker lost) is reported in `Measurements.failures`; the rest of the fleet completes. A task
times its units in shared rounds (`MeasureConfig.interleave`) and writes them when the rounds end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import ray

from ..arch.blocks import BlockConfig
from ..arch.config import PuzzleConfig
from ..cluster import connect
from ..configs import content_hash
from ..store import ArtifactStore
from ..ui import progress
from .config import MeasureConfig, Scenario
from .device import measure_units_on_device
from .hardware import fingerprint, resolve_device
from .results import MeasureError, Measurements
from .timed_block import TimedBlock, stack_depth_for, sub_blocks

log = logging.getLogger(__name__)

CACHE_PREFIX = "measure/cache"


def cache_key(parent: PuzzleConfig, unit: TimedBlock, scenario: Scenario, batch: int, config: MeasureConfig,
              fp: dict) -> str:
    parts = {
        "unit": unit.shape(parent),
        "stack_depth": stack_depth_for(unit, parent, scenario.dtype, config),  # depends on the parent's size
        "workload": scenario.workload(batch),
        "method": config.method(),
        **fp,
    }
    return f"{CACHE_PREFIX}/{content_hash(parts, length=24)}.json"


def _check_cluster_can_place(config: MeasureConfig) -> None:
    """Fail now, not after an endless wait, when no node offers the resources a task asks for."""
    have = ray.cluster_resources()
    need = {"CPU": config.num_cpus}
    if config.num_gpus:
        need["GPU"] = config.num_gpus
    if config.accelerator_type:
        need[f"accelerator_type:{config.accelerator_type}"] = 0.001
    missing = [f"{k}={v:g}" for k, v in need.items() if have.get(k, 0) < v]
    if missing:
        types = sorted(k.split(":", 1)[1] for k in have if k.startswith("accelerator_type:"))
        raise MeasureError(
            f"the Ray cluster cannot place a measurement task: it needs {', '.join(missing)} "
            f"(cluster has CPU={have.get('CPU', 0):g}, GPU={have.get('GPU', 0):g}, accelerator types {types or 'none'})"
        )


def _probe(config: MeasureConfig) -> dict[str, Any]:
    return fingerprint(resolve_device(config))


def _measure_task(
    parent: PuzzleConfig,
    work: list[tuple[TimedBlock, list[int]]],
    scenario: Scenario,
    config: MeasureConfig,
    store: ArtifactStore,
) -> list[tuple[str, dict[str, Any]]]:
    """Time each unit at its missing batch sizes; write every fitting result to the store; return
    (unit key, entry) pairs."""
    device = resolve_device(config)
    fp = fingerprint(device)
    by_batches: dict[tuple[int, ...], list[TimedBlock]] = {}  # units missing the same batch sizes are timed together
    for unit, batches in work:
        by_batches.setdefault(tuple(batches), []).append(unit)
    out = []
    for batches, units in by_batches.items():
        sub = scenario.model_copy(update={"batch_sizes": list(batches)})
        entries = measure_units_on_device(parent, units, sub, config, device)
        for unit, entry in zip((u for u in units for _ in batches), entries, strict=True):
            key = cache_key(parent, unit, scenario, entry["batch_size"], config, fp)
            entry = {
                "unit": unit.label(parent),
                "shape": unit.shape(parent),
                "workload": scenario.workload(entry["batch_size"]),
                "method": config.method(),
                **fp,
                **entry,
            }
            if entry["fits"] and config.cache:
                store.write_json(key, entry)  # not-fitting results depend on the memory limit: never cached
            out.append((unit.key(parent), entry))
    return out


_probe_remote = ray.remote(_probe)
_measure_remote = ray.remote(_measure_task)


def measure_units(
    parent: PuzzleConfig, units: Iterable[TimedBlock], scenario: Scenario, config: MeasureConfig, store: ArtifactStore
) -> Measurements:
    """Measure every unit at every batch size of `scenario` on the target, reusing cached results."""
    store.check_writable()
    unique: dict[str, TimedBlock] = {}
    for unit in units:
        if not unit.is_no_op:
            unique.setdefault(unit.key(parent), unit)
    connect()
    _check_cluster_can_place(config)
    fp = ray.get(_probe_remote.options(**config.ray_options()).remote(config))

    entries: dict[tuple[str, int], dict[str, Any]] = {}
    missing: list[tuple[TimedBlock, list[int]]] = []
    for ukey, unit in unique.items():
        todo = []
        for batch in scenario.batch_sizes:
            key = cache_key(parent, unit, scenario, batch, config, fp)
            if config.cache and store.exists(key):
                entries[(ukey, batch)] = store.read_json(key)
            else:
                todo.append(batch)
        if todo:
            missing.append((unit, todo))
    result = Measurements(parent, scenario, config, entries, fp, num_cached=len(entries))
    if not missing:
        return result

    groups = [missing[i : i + config.units_per_task] for i in range(0, len(missing), config.units_per_task)]
    result.num_tasks = len(groups)
    limit = config.max_concurrent_tasks or (1 if config.device == "cpu" else len(groups))
    options = config.ray_options()
    pending: dict[Any, list[tuple[TimedBlock, list[int]]]] = {}
    queue = list(groups)
    with progress("units") as bar:
        task = bar.add_task(f"measuring on {fp['hardware']}", total=len(missing))
        while queue or pending:
            while queue and len(pending) < limit:
                group = queue.pop(0)
                pending[_measure_remote.options(**options).remote(parent, group, scenario, config, store)] = group
            done, _ = ray.wait(list(pending), num_returns=1)
            group = pending.pop(done[0])
            try:
                measured = ray.get(done[0])
            except (ray.exceptions.RayError, MemoryError) as e:
                cause = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                result.failures += [f"{u.label(parent)}: {type(e).__name__}: {cause}" for u, _ in group]
                log.warning("measurement task failed for %d units: %s", len(group), cause)
                bar.advance(task, len(group))
                continue
            for ukey, entry in measured:
                if entry["hardware"] != fp["hardware"]:
                    raise MeasureError(
                        f"a task ran on {entry['hardware']!r} but the probe ran on {fp['hardware']!r}: "
                        "set accelerator_type so every task lands on the target hardware"
                    )
                entries[(ukey, entry["batch_size"])] = entry
                result.num_measured += 1
            bar.advance(task, len(group))
    return result


def measure_blocks(
    parent: PuzzleConfig,
    blocks: Iterable[BlockConfig],
    scenario: Scenario,
    config: MeasureConfig,
    store: ArtifactStore,
    include_non_block: bool = True,
) -> Measurements:
    """Measure the attention and FFN sub-blocks of `blocks` (and the non-block part) on the target.

    `Measurements.block_stats(block)` then gives each block's library stats.
    """
    blocks = list(blocks)
    for i, block in enumerate(blocks):
        block.validate(i, parent.num_attention_heads)
    units = [u for block in blocks for u in sub_blocks(block.resolve(parent.hidden_size))]
    if include_non_block:
        units.append(TimedBlock(None))
    return measure_units(parent, units, scenario, config, store)
