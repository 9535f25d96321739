"""Typed configuration of the evaluation of a child against its parent (quality, speed, memory)."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, field_validator

from ..configs import StrictConfig
from ..measure.config import MeasureConfig


class EvalConfig(StrictConfig):
    batch_size: PositiveInt = 8
    """Held-out sequences per forward pass for the quality metrics."""
    max_batches: PositiveInt | None = 16
    """Held-out batches to evaluate on (None: the whole split)."""
    chunk_tokens: PositiveInt = 1024
    """Tokens per chunk when computing logits (bounds the vocabulary-sized tensors in memory)."""
    dtype: Literal["fp32", "bf16"] = "fp32"
    """Precision of the quality forward passes."""
    episode_demos: list[int] = [0, 4, 16]
    """Demonstrations in context for the held-out in-context episodes (one accuracy per count)."""
    episode_count: PositiveInt = 100
    """Held-out episodes per demonstration count."""
    episode_classes: PositiveInt = 8
    """Classes per episode (chance = 1 / episode_classes)."""
    episode_seed: int = 1
    """Seed of the held-out episodes (the training corpus uses other seeds)."""
    icl_tasks: list[str] = ["word_category", "city_country"]
    """In-context classification tasks (rows `icl:<task>@<shots>`): names of the tasks shipped in
    `puzzle_ray/data/tasks/` (word_category: 16 classes, city_country: 16 classes) or paths of JSONL files of
    `{"text", "label"}`; []: none. Each label is scored by its log-likelihood, the best one is the prediction."""
    icl_shots: list[int] = [0, 8]
    """Demonstrations before each test example (one accuracy per count); each example draws its own."""
    icl_examples: PositiveInt = 48
    """Held-out test examples per task and shot count (CPU cost: about that many prompts per model); a task with
    fewer uses all of its own (word_category has 128, city_country 80) and the report notes it."""
    icl_seed: int = 0
    """Seed of the tasks' pool / test split and of the shots drawn."""
    icl_batch_size: PositiveInt = 8
    """Prompts per forward pass when scoring the in-context tasks."""
    completion_prompts: list[str] = [
        "The capital of France is",
        "def fibonacci(n):",
        "Once upon a time, there was a little",
    ]
    """Prompts whose greedy completions by parent and child go into the report side by side; []: none."""
    completion_tokens: PositiveInt = 20
    """New tokens of each greedy completion."""
    measure_speed: bool = True
    """Time prefill and decode end-to-end for parent and child (seconds to minutes); off: quality and memory only."""
    measure: MeasureConfig = MeasureConfig(warmup=1, repeats=5)
    """How the end-to-end timing is done (threads, repeats, device)."""

    @field_validator("episode_demos")
    @classmethod
    def _demos(cls, v: list[int]) -> list[int]:
        if any(d < 0 for d in v):
            raise ValueError(f"episode_demos={v}: demonstration counts must be >= 0")
        return sorted(set(v))

    @field_validator("icl_shots")
    @classmethod
    def _shots(cls, v: list[int]) -> list[int]:
        if any(k < 0 for k in v):
            raise ValueError(f"icl_shots={v}: shot counts must be >= 0")
        return sorted(set(v))

    @field_validator("icl_tasks")
    @classmethod
    def _tasks(cls, v: list[str]) -> list[str]:
        from .icl import task_path

        for name in v:
            task_path(name)  # an unknown shipped name fails here, naming the shipped ones
        return list(dict.fromkeys(v))


class PublishConfig(StrictConfig):
    """Where the evaluated child goes in the MLflow model registry."""

    registered_name: str | None = None
    """Registered model name; None: do not publish."""
    alias: str = "candidate"
    """Registry alias pointed at the new version (promote it later by moving e.g. `production`)."""

    @field_validator("alias")
    @classmethod
    def _alias(cls, v: str) -> str:
        if not v or not v.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"alias={v!r}: use letters, digits, '-' and '_'")
        return v
