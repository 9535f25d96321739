"""The training engine interface shared by plain DDP and DeepSpeed, and the factory that picks one.

An engine owns the wrapped student and its optimizer, performs one optimizer step over a list of
micro-batches, and saves / restores its own training state in a checkpoint folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch

from .config import DistillConfig
from .objective import GKDStudent, TeacherTargets

TeacherFn = Callable[[torch.Tensor], TeacherTargets]


class TrainEngine(Protocol):
    def train_step(
        self, micro_batches: list[torch.Tensor], teacher: TeacherFn, lr: float
    ) -> tuple[torch.Tensor, float]:
        """One optimizer step; returns the mean per-term losses (3,) over the micro-batches and the grad norm."""
        ...

    def save(self, folder: Path, rank: int) -> None:
        """Write this rank's share of the training state (collective: every rank calls it)."""
        ...

    def load(self, folder: Path) -> None:
        """Restore the training state written by `save` (collective)."""
        ...

    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """The student's complete weights (collective: gathers ZeRO-3 partitions; meaningful on rank 0)."""
        ...


def build_engine(gkd: GKDStudent, config: DistillConfig, device: torch.device, world_size: int) -> TrainEngine:
    if config.engine == "deepspeed":
        from .engine_deepspeed import DeepSpeedEngine

        return DeepSpeedEngine(gkd, config, device, world_size)
    from .engine_ddp import DDPEngine

    return DDPEngine(gkd, config, device, world_size)
