"""Learning-rate schedule: linear warm-up from 0, then cosine decay to `min_lr_ratio * lr`."""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, total_steps: int, lr: float, warmup_fraction: float, min_lr_ratio: float) -> float:
    """Learning rate of optimizer step `step` (0-based) out of `total_steps`."""
    warmup = int(warmup_fraction * total_steps)
    if step < warmup:
        return lr * (step + 1) / warmup
    decay_steps = max(1, total_steps - warmup)
    progress = min(1.0, (step - warmup) / decay_steps)
    floor = min_lr_ratio * lr
    return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
