"""What a measurement ran on: the hardware name, the software versions, and how much memory it may use.

Both names enter the cache key: a timing from another GPU model, another CPU, or another torch release is
not reused.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from typing import Any

import psutil
import torch
import transformers

from .. import __version__
from .config import MeasureConfig

MEASURE_FORMAT = 1
"""Bumped when the measurement method changes what a cached number means."""


@lru_cache(maxsize=1)
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: str) -> str:
    """e.g. 'NVIDIA H100 80GB HBM3' or 'cpu: Intel(R) Xeon(R) Processor (x86_64)'."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"cpu: {_cpu_model()} ({platform.machine()})"


def software_versions() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.version.cuda,
        "puzzle_ray": __version__,
        "format": MEASURE_FORMAT,
    }


def fingerprint(device: str) -> dict[str, Any]:
    return {"hardware": hardware_name(device), "software": software_versions()}


def device_memory_bytes(config: MeasureConfig, device: str) -> int:
    """The memory a measurement may fill: the configured limit, else the GPU's total or the available RAM."""
    if config.device_memory_mib is not None:
        total = config.device_memory_mib * 2**20
    elif torch.device(device).type == "cuda":
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
    else:
        total = psutil.virtual_memory().available
    return int(total * config.memory_headroom)


def resolve_device(config: MeasureConfig) -> str:
    """The device this process measures on, or an error saying what is missing."""
    if config.num_gpus:
        if not torch.cuda.is_available():
            raise RuntimeError("num_gpus=1 but this worker sees no CUDA device (is the Ray node a GPU node?)")
        return "cuda"
    return "cpu"
