"""Typed configuration of the block-library stage (initialisation + blockwise local distillation)."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, model_validator

from ..optim.config import FractionWarmupConfig
from .init import LinearInit


class BLDConfig(FractionWarmupConfig):
    """BLD's settings; the optimiser's (`lr`, `weight_decay`, `betas`, `warmup_fraction`, `min_lr_ratio`,
    `grad_clip`) come from `FractionWarmupConfig` with its defaults."""

    mode: Literal["decoupled", "coupled"] = "decoupled"
    """decoupled: each attention variant is trained with the parent's frozen FFN and each FFN variant with the
    parent's frozen attention, then composed; coupled: every (attention, FFN) pair is trained together."""
    num_actors: PositiveInt = 1
    """BLD actors; each owns a contiguous range of layers and every variant of them (one per GPU or CPU slot)."""
    micro_batch_size: PositiveInt = 8
    """Sequences per micro-batch flowing through the parent pipeline."""
    token_budget: PositiveInt = 200_000
    """Training tokens every trained variant sees."""
    calibration_batches: PositiveInt = 4
    """Micro-batches of calibration tokens for channel ranking and least-squares linear initialisation."""
    eval_batches: PositiveInt = 4
    """Held-out micro-batches for the normalised MSE before and after BLD."""
    linear_init: LinearInit = "lstsq"
    """Linear replacements: least squares on calibration activations (default), or the paper's weight product."""
    checkpoint_every: PositiveInt = 50
    """Steps between checkpoints of every variant's weights and optimiser state."""
    max_failures: int = 3
    """Actor deaths tolerated (Ray restarts the actor; training resumes from the last checkpoint)."""
    max_in_flight: PositiveInt = 3
    """Micro-batches in the pipeline at once (backpressure)."""
    threads_per_actor: PositiveInt | None = None
    """torch threads per actor on CPU (default: cores / actors)."""
    use_gpu: bool | None = None
    """Place actors on GPUs (default: when the cluster has GPUs)."""
    seed: int = 0
    """Seed of the data order."""

    @model_validator(mode="after")
    def _check(self):
        if self.checkpoint_every < self.max_in_flight:
            raise ValueError("checkpoint_every must be >= max_in_flight (actors may be that many steps apart)")
        return self

    def warmup_steps_for(self, total_steps: int) -> int:
        # At least one: BLD has always run its first step at the peak, even when the share rounds to 0 steps.
        return max(1, super().warmup_steps_for(total_steps))

    def result_hash_fields(self) -> dict:
        """The fields that change the trained weights (not how the work is spread or checkpointed)."""
        skip = {"num_actors", "checkpoint_every", "max_failures", "max_in_flight", "threads_per_actor", "use_gpu"}
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in skip}
