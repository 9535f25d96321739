"""Typed configuration of global knowledge distillation (GKD): loss weights, budget, schedule, engine, workers."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt, field_validator, model_validator

from ..optim.config import FractionWarmupConfig

Engine = Literal["ddp", "deepspeed"]


class DistillConfig(FractionWarmupConfig):
    """GKD's settings; the optimiser's (`weight_decay`, `betas`, `warmup_fraction`, `min_lr_ratio`, `grad_clip`)
    come from `FractionWarmupConfig` with its defaults, `lr` is GKD's own."""

    # -- loss ----------------------------------------------------------------------------------------------
    cosine_weight: NonNegativeFloat = 1.0
    """Weight of the sum over aligned layers of (1 - cosine(child hidden state, parent hidden state))."""
    kl_weight: NonNegativeFloat = 1.0
    """Weight of KL(parent || child) on the next-token distributions."""
    lm_weight: NonNegativeFloat = 0.0
    """Weight of the child's own next-token cross-entropy; 0 by default (the Puzzle paper found it hurts)."""
    kl_chunk_tokens: PositiveInt = 1024
    """Tokens per chunk when computing logits and KL: at most this many rows of vocabulary-sized logits live at
    once (per model), in the forward and, recomputed, in the backward."""

    # -- budget and schedule -------------------------------------------------------------------------------
    token_budget: int = 1_000_000
    """Training tokens over all workers; steps = token_budget // tokens per optimizer step."""
    micro_batch_size: PositiveInt = 4
    """Sequences per worker per forward/backward."""
    grad_accum_steps: PositiveInt = 1
    """Micro-batches accumulated per optimizer step."""
    lr: PositiveFloat = 1e-4
    """Peak AdamW learning rate."""
    seed: int = 0
    """Seed of the data order."""

    # -- engine --------------------------------------------------------------------------------------------
    engine: Engine = "ddp"
    """ddp: plain PyTorch DistributedDataParallel; deepspeed: DeepSpeed ZeRO (for children that do not fit)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage, 0-3 (deepspeed engine only)."""
    offload_optimizer: bool = False
    """DeepSpeed: keep optimizer states on the CPU (ZeRO stage >= 1)."""
    offload_params: bool = False
    """DeepSpeed: keep parameters on the CPU (ZeRO stage 3 only)."""
    bf16: bool = False
    """Train in bfloat16 (autocast for ddp, bf16 weights with fp32 master copies for deepspeed); the teacher is
    then held in bfloat16 too."""

    # -- workers, checkpoints, logging ---------------------------------------------------------------------
    num_workers: PositiveInt = 1
    """Ray Train workers (one per GPU, or CPU processes)."""
    use_gpu: bool = False
    """One GPU per worker (NCCL); otherwise CPU workers on gloo."""
    cpus_per_worker: PositiveFloat = 1.0
    """CPU slots each worker reserves (fractions let workers share cores in tests; Ray Data feeding workers that
    each take a whole CPU deadlocks on a 2-CPU machine)."""
    torch_threads: PositiveInt | None = None
    """torch intra-op threads per worker on CPU (default: cpus_per_worker rounded up)."""
    checkpoint_every: PositiveInt = 100
    """Optimizer steps between checkpoints (one is always written at the end)."""
    checkpoints_to_keep: PositiveInt = 2
    """Most recent checkpoints kept in the artifact store."""
    max_failures: int = 3
    """Worker-group failures tolerated; Ray Train restarts the workers, which resume from the latest checkpoint."""
    log_every: PositiveInt = 10
    """Optimizer steps between MLflow metric records and progress updates."""

    @field_validator("token_budget")
    @classmethod
    def _positive_budget(cls, v: int) -> int:
        if v <= 0:
            raise ValueError(f"token_budget={v}: GKD needs a positive number of training tokens")
        return v

    @field_validator("zero_stage")
    @classmethod
    def _zero_stage(cls, v: int) -> int:
        if v not in (0, 1, 2, 3):
            raise ValueError(f"zero_stage={v}: DeepSpeed ZeRO stages are 0, 1, 2 or 3")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.cosine_weight == self.kl_weight == self.lm_weight == 0:
            raise ValueError("cosine_weight, kl_weight and lm_weight are all 0: there is nothing to train on")
        if self.max_failures < 0:
            raise ValueError(f"max_failures={self.max_failures} must be >= 0")
        if self.engine == "ddp" and (self.offload_optimizer or self.offload_params):
            raise ValueError("offload_optimizer / offload_params need engine='deepspeed'")
        if self.offload_optimizer and self.zero_stage < 1:
            raise ValueError(f"offload_optimizer needs zero_stage >= 1 (got zero_stage={self.zero_stage})")
        if self.offload_params and self.zero_stage != 3:
            raise ValueError(f"offload_params needs zero_stage=3 (got zero_stage={self.zero_stage})")
        return self

    @property
    def sequences_per_step(self) -> int:
        """Sequences in one optimizer step over all workers."""
        return self.micro_batch_size * self.grad_accum_steps * self.num_workers

    def result_hash_fields(self) -> dict:
        """The fields that change the distilled weights (not how often we checkpoint, log or retry)."""
        skip = {"checkpoint_every", "checkpoints_to_keep", "max_failures", "log_every", "torch_threads",
                "cpus_per_worker"}
        return {k: v for k, v in self.model_dump(mode="json").items() if k not in skip}
