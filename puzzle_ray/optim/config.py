"""The optimiser config every trainer embeds: AdamW and its warm-up + cosine schedule.

BLD, GKD and pretraining inherit it, so that their YAML keys stay flat (`bld.lr`, `distill.grad_clip`,
`parent.embedded.train.betas`); a trainer whose defaults differ redeclares only those fields. How the warm-up
is given differs (a share of the steps, or a number of steps), so each config says how many steps it is.
"""

from __future__ import annotations

from pydantic import NonNegativeFloat, PositiveFloat, field_validator

from ..configs import StrictConfig
from .schedule import fraction_warmup_steps, warmup_cosine


class OptimizerConfig(StrictConfig):
    lr: PositiveFloat = 1e-3
    """Peak AdamW learning rate."""
    weight_decay: NonNegativeFloat = 0.0
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas (the default: torch's)."""
    min_lr_ratio: float = 0.1
    """Final learning rate of the cosine decay, as a fraction of `lr`."""
    grad_clip: PositiveFloat = 1.0
    """Gradient-norm clipping (BLD: per variant; GKD and pretraining: over all trained parameters)."""

    @field_validator("min_lr_ratio")
    @classmethod
    def _ratio(cls, v: float) -> float:
        if not 0 <= v <= 1:
            raise ValueError(f"min_lr_ratio={v} must be in [0, 1]")
        return v

    def warmup_steps_for(self, total_steps: int) -> int:
        """Linear warm-up steps of a run of `total_steps` optimizer steps."""
        raise NotImplementedError(f"{type(self).__name__} does not say how long its warm-up is")

    def lr_at(self, step: int, total_steps: int) -> float:
        """Learning rate of optimizer step `step` (0-based) of a run of `total_steps`."""
        return warmup_cosine(step, total_steps, self.lr, self.warmup_steps_for(total_steps), self.min_lr_ratio)


class FractionWarmupConfig(OptimizerConfig):
    """An optimiser config whose warm-up is a share of the run's steps."""

    warmup_fraction: float = 0.05
    """Share of the steps with a linear warm-up; a cosine decay to `min_lr_ratio * lr` follows."""

    @field_validator("warmup_fraction")
    @classmethod
    def _fraction(cls, v: float) -> float:
        if not 0 <= v < 1:
            raise ValueError(f"warmup_fraction={v} must be in [0, 1)")
        return v

    def warmup_steps_for(self, total_steps: int) -> int:
        return fraction_warmup_steps(self.warmup_fraction, total_steps)
