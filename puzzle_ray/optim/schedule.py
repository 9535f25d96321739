"""The learning-rate schedule of every trainer: linear warm-up, then cosine decay to `min_lr_ratio * lr`.

The warm-up reaches `lr / warmup_steps` at step 0 and the peak at step `warmup_steps - 1`; the decay starts at
the peak on step `warmup_steps` and reaches the floor on step `total_steps` (one past the last). transformers'
`get_cosine_with_min_lr_schedule_with_warmup` warms up the same way but runs its cosine one step ahead (peak
never held, floor on the last step), so it would change every trained weight: the schedule is our own.
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, total_steps: int, lr: float, warmup_steps: int, min_lr_ratio: float) -> float:
    """Learning rate of optimizer step `step` (0-based) out of `total_steps`, peaking at `lr`.

    With `lr=1.0` it is the multiplier a `LambdaLR` applies to the optimizer's own learning rate.
    """
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def fraction_warmup_steps(warmup_fraction: float, total_steps: int) -> int:
    """Warm-up steps of a warm-up given as a share of the steps (rounded down, so possibly 0)."""
    return int(warmup_fraction * total_steps)


def warmup_cosine_lr(step: int, total_steps: int, lr: float, warmup_fraction: float, min_lr_ratio: float) -> float:
    """`warmup_cosine` with the warm-up given as a share of the steps."""
    return warmup_cosine(step, total_steps, lr, fraction_warmup_steps(warmup_fraction, total_steps), min_lr_ratio)


def warmup_cosine_scheduler(optimizer, total_steps: int, warmup_steps: int, min_lr_ratio: float):
    """A `torch.optim.lr_scheduler.LambdaLR` stepping `warmup_cosine` from each group's learning rate.

    The multiplier is a plain function (not a `functools.partial`), so that the scheduler's `state_dict` keeps
    holding no lambda state, as checkpoints have always stored it.
    """
    import torch

    def multiplier(step: int) -> float:
        return warmup_cosine(step, total_steps, 1.0, warmup_steps, min_lr_ratio)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
