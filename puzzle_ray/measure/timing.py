"""Device timers and robust summaries.

On GPU a call is bracketed by CUDA events and the end event is synchronised (kernel launches are
asynchronous, so wall-clock time around the call would measure the launch, not the work). On CPU it is
`time.perf_counter` (or, optionally, the thread's CPU time: see `DeviceTimer`). The garbage collector is
paused while timing: a collection inside a sample is noise.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import torch


class DeviceTimer:
    """`clock="thread"` (CPU only) counts the CPU time of the calling thread instead of wall time: on a
    machine shared with other work it ignores the time this process is descheduled. It sees only the calling
    thread, so it is valid with one torch thread (then all compute runs inline in that thread)."""

    def __init__(self, device: str | torch.device, clock: str = "wall"):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.now = time.thread_time if clock == "thread" and not self.cuda else time.perf_counter

    def __call__(self, fn: Callable[[], object]) -> float:
        """Milliseconds that `fn()` takes on the device."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        start = self.now()
        fn()
        return (self.now() - start) * 1e3


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    # No gc.collect() first: with torch and transformers loaded a full collection takes ~0.4 s, and
    # disabling the collector is enough to keep collections out of the timed region.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass(frozen=True)
class Summary:
    median: float
    iqr: float
    """Inter-quartile range (q75 - q25): the spread, robust to the odd descheduled sample."""
    n: int


def summarize(samples: list[float]) -> Summary:
    if not samples:
        raise ValueError("no samples to summarise")
    if len(samples) < 4:
        return Summary(statistics.median(samples), max(samples) - min(samples), len(samples))
    q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return Summary(statistics.median(samples), q3 - q1, len(samples))


class Workload(Protocol):
    """One timed call (`run`) and what must happen untimed before each (`setup`: a fresh cache, a crop)."""

    def setup(self) -> None: ...

    def run(self) -> object: ...


def paired_sample(timer: DeviceTimer, baseline: Workload, candidate: Workload, flip: bool) -> tuple[float, float]:
    """One timing of `candidate` and one of `baseline`, back to back: (candidate - baseline, candidate) in ms.
    `flip` puts the candidate first (alternate it so that a slow drift hits both sides alike)."""
    times = {}
    for w in (candidate, baseline) if flip else (baseline, candidate):
        w.setup()
        times[w is candidate] = timer(w.run)
    return times[True] - times[False], times[True]


def single_sample(timer: DeviceTimer, workload: Workload) -> float:
    workload.setup()
    return timer(workload.run)


def paired_differences(
    timer: DeviceTimer, baseline: Workload, candidate: Workload, warmup: int, repeats: int
) -> tuple[list[float], list[float]]:
    """Interleaved timings of `candidate` and `baseline`: per repeat (candidate - baseline, candidate) in ms.

    The order alternates every repeat (ABBA...), so slow drifts (another process, clock changes) hit both
    sides equally and cancel in the differences.
    """
    for _ in range(warmup):
        for w in (baseline, candidate):
            w.setup()
            w.run()
    with quiet_gc():
        pairs = [paired_sample(timer, baseline, candidate, flip=r % 2 == 1) for r in range(repeats)]
    return [d for d, _ in pairs], [t for _, t in pairs]

