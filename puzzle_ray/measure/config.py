"""Typed configuration of the measurement stage: the inference workload (`Scenario`) and how to time it.

scenario:  {name: chat, batch_sizes: [1, 16], prefill_len: 1024, decode_len: 128, dtype: bf16}
measure:   {stack_depth: 4, warmup: 3, repeats: 15, num_gpus: 1, accelerator_type: H100}
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import field_validator, model_validator

from ..configs import StrictConfig

DType = Literal["fp32", "bf16", "fp16"]
TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float": "fp32"}


class Scenario(StrictConfig):
    """One inference workload: B requests of `prefill_len` prompt tokens, each generating `decode_len` tokens."""

    name: str = "default"
    """Label of the scenario (it names the stats in reports; it is not part of the measurement cache key)."""
    batch_sizes: list[int] = [1]
    """Requests decoded together; every size is measured, the first one fills the library's flat stats."""
    prefill_len: int = 128
    """Prompt tokens per request (one prefill of B x prefill_len tokens)."""
    decode_len: int = 32
    """Generated tokens per request (decode_len decode steps of B tokens each, with a warm KV cache)."""
    dtype: DType = "bf16"
    """Weights, activations and KV cache: fp32, bf16 or fp16."""

    @field_validator("dtype", mode="before")
    @classmethod
    def _dtype_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = _DTYPE_ALIASES.get(value.lower(), value.lower())
            if value not in TORCH_DTYPES:
                raise ValueError(f"dtype={value!r}: expected one of {', '.join(TORCH_DTYPES)}")
        return value

    @field_validator("batch_sizes")
    @classmethod
    def _batch_sizes(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError("batch_sizes: give at least one batch size")
        bad = [b for b in value if b <= 0]
        if bad:
            raise ValueError(f"batch_sizes={value}: every batch size must be positive (got {bad[0]})")
        if len(set(value)) != len(value):
            raise ValueError(f"batch_sizes={value}: a batch size is repeated")
        return value

    @field_validator("prefill_len", "decode_len")
    @classmethod
    def _positive_length(cls, value: int, info) -> int:
        if value <= 0:
            raise ValueError(f"{info.field_name}={value} must be a positive number of tokens")
        return value

    @property
    def torch_dtype(self) -> torch.dtype:
        return TORCH_DTYPES[self.dtype]

    @property
    def decode_context(self) -> int:
        """Tokens in the KV cache at the average decode step (decode costs grow linearly with the context)."""
        return self.prefill_len + self.decode_len // 2

    @property
    def total_len(self) -> int:
        return self.prefill_len + self.decode_len

    def workload(self, batch_size: int) -> dict[str, Any]:
        """What determines a measurement at one batch size (part of the cache key; the name is not)."""
        return {
            "batch_size": batch_size,
            "prefill_len": self.prefill_len,
            "decode_len": self.decode_len,
            "dtype": self.dtype,
        }


class MeasureConfig(StrictConfig):
    """How blocks are timed and where: differential stacks, repeats, and the Ray resources of the target."""

    stack_depth: int = 4
    """N (at least): a block is timed as (stack of N copies - stack of N no-op blocks) / N, so fixed
    overheads cancel."""
    min_stack_mib: float | None = 256
    """Stacks are deepened (up to `max_stack_depth`) until their weights fill min(this, the parent's block
    weights): each copy's weights then come from memory, as in the full model, instead of from a cache the
    full model would overflow (decode is memory-bound). None: always `stack_depth` copies."""
    max_stack_depth: int = 32
    """Upper bound on the copies in a stack."""
    warmup: int = 2
    """Untimed runs of each stack before timing (allocator, kernels and caches warm up)."""
    repeats: int = 15
    """Timed samples per stack and phase; the median is the figure, the inter-quartile range its spread."""
    decode_steps_per_sample: int = 4
    """Decode steps timed together in one sample (short steps are noisy alone); capped at decode_len."""
    num_gpus: Literal[0, 1] = 0
    """GPUs per measurement task: 0 measures on CPU, 1 on one GPU of the target type."""
    accelerator_type: str | None = None
    """Ray accelerator type of the target (e.g. 'H100', 'A100-80G'); tasks only land on nodes that have it."""
    num_cpus: float = 1
    """CPUs per measurement task (on CPU targets this is also the torch thread count unless `threads` is set)."""
    threads: int | None = None
    """torch threads while timing (default: `num_cpus`, at least 1); fixed so timings are comparable."""
    cpu_clock: Literal["wall", "thread"] = "wall"
    """CPU timing clock: `wall` (perf_counter) or `thread` (the timing thread's CPU time, which ignores time
    the process is descheduled: for machines shared with other work; needs threads=1)."""
    device_memory_mib: float | None = None
    """Memory a measurement may use (default: the GPU's total memory, or the machine's available RAM on CPU);
    a batch whose estimated footprint exceeds it is reported as not fitting instead of being run."""
    memory_headroom: float = 0.9
    """Fraction of `device_memory_mib` that the estimated footprint may fill."""
    units_per_task: int = 8
    """Sub-blocks timed by one Ray task (they share its baseline stack and start-up)."""
    interleave: bool = True
    """Time a task's units in rounds, one sample of each per round, so that the machine's speed changing
    during the measurement moves all of them alike (measured on a shared 2-core VM: speed moves 20-30 % within
    minutes, which timing one unit after another turns into errors between variants). Needs the task's
    stacks in memory together; they are timed one after the other where they would not fit."""
    max_concurrent_tasks: int | None = None
    """Tasks running at once (default: 1 on CPU, where concurrent tasks disturb each other's timings;
    unlimited on GPUs, one task per GPU)."""
    cache: bool = True
    """Reuse earlier measurements from the artifact store (same block shape, workload, hardware, software)."""
    seed: int = 0
    """Seed of the random weights and inputs (runtime depends on shapes only; fixed for reproducibility)."""

    @field_validator("stack_depth", "max_stack_depth", "repeats", "decode_steps_per_sample", "units_per_task")
    @classmethod
    def _positive(cls, value: int, info) -> int:
        if value <= 0:
            raise ValueError(f"{info.field_name}={value} must be positive")
        return value

    @field_validator("warmup")
    @classmethod
    def _non_negative(cls, value: int) -> int:
        if value < 0:
            raise ValueError(f"warmup={value} must be >= 0")
        return value

    @model_validator(mode="after")
    def _check(self):
        if self.max_stack_depth < self.stack_depth:
            raise ValueError(f"max_stack_depth={self.max_stack_depth} is below stack_depth={self.stack_depth}")
        if self.min_stack_mib is not None and self.min_stack_mib <= 0:
            raise ValueError(f"min_stack_mib={self.min_stack_mib} must be positive (or null)")
        if self.num_cpus <= 0:
            raise ValueError(f"num_cpus={self.num_cpus} must be positive")
        if self.threads is not None and self.threads <= 0:
            raise ValueError(f"threads={self.threads} must be positive")
        if self.device_memory_mib is not None and self.device_memory_mib <= 0:
            raise ValueError(f"device_memory_mib={self.device_memory_mib} must be positive")
        if not 0 < self.memory_headroom <= 1:
            raise ValueError(f"memory_headroom={self.memory_headroom} must be in (0, 1]")
        if self.max_concurrent_tasks is not None and self.max_concurrent_tasks <= 0:
            raise ValueError(f"max_concurrent_tasks={self.max_concurrent_tasks} must be positive")
        if self.cpu_clock == "thread" and self.torch_threads != 1:
            raise ValueError(
                f"cpu_clock='thread' needs threads=1 (got {self.torch_threads}): other threads' work would be missed"
            )
        if self.accelerator_type is not None and self.num_gpus == 0:
            raise ValueError("accelerator_type is set but num_gpus=0: set num_gpus=1 to measure on that accelerator")
        return self

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus else "cpu"

    @property
    def torch_threads(self) -> int:
        return self.threads or max(1, int(self.num_cpus))

    def method(self) -> dict[str, Any]:
        """The fields that change a measured value (part of the cache key); where and how wide the fleet runs
        do not."""
        return {
            "stack_depth": self.stack_depth,
            "min_stack_mib": self.min_stack_mib,
            "max_stack_depth": self.max_stack_depth,
            "warmup": self.warmup,
            "repeats": self.repeats,
            "decode_steps_per_sample": self.decode_steps_per_sample,
            "threads": self.torch_threads if self.device == "cpu" else None,
            "clock": self.cpu_clock if self.device == "cpu" else "cuda_events",
            "seed": self.seed,
            "interleave": self.interleave,
        }

    def ray_options(self) -> dict[str, Any]:
        """Resources of one measurement task."""
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "max_retries": 0}
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        return options


class MeasureStageConfig(StrictConfig):
    """The measurement stage as the workflow sees it."""

    scenario: Scenario = Scenario()
    """The inference workload the library is measured for."""
    measure: MeasureConfig = MeasureConfig()
    """How and where to time it."""
