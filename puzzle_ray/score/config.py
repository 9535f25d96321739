"""Typed configuration of replace-1-block scoring."""

from __future__ import annotations

from pydantic import PositiveInt, field_validator

from ..configs import StrictConfig

METRICS = {
    "kl_div": "mean KL(parent || child) of next-token distributions (the paper's best choice)",
    "lm_loss": "mean next-token cross-entropy on the validation tokens",
    "top1_acc": "next-token top-1 accuracy (higher is better)",
    "cosine_distance": "mean 1 - cosine similarity of the final hidden states with the parent's",
}
HIGHER_IS_BETTER = {"top1_acc"}


class ScoreConfig(StrictConfig):
    metrics: list[str] = list(METRICS)
    """Metrics to compute for every (layer, variant): any of kl_div, lm_loss, top1_acc, cosine_distance."""
    eval_batches: PositiveInt = 8
    """Validation micro-batches every variant is scored on (the same for all)."""
    batch_size: PositiveInt = 8
    """Sequences per validation micro-batch (the shipped plans use their BLD micro-batch size)."""
    num_actors: PositiveInt = 1
    """Scoring actors; each holds the parent (on a GPU when there are GPUs) and scores a share of the layers."""
    variants_per_chunk: PositiveInt = 4
    """Variants of one layer pushed through the rest of the parent together (batched along the batch axis)."""
    chunk_tokens: PositiveInt = 1024
    """Positions whose vocabulary-sized logits exist at once (bounds memory: 1024 x 49k fp32 = 200 MB)."""
    threads_per_actor: PositiveInt | None = None
    """torch threads per actor on CPU (default: cores / actors)."""
    use_gpu: bool | None = None
    """Place actors on GPUs (default: when the cluster has GPUs)."""

    @field_validator("metrics")
    @classmethod
    def _known(cls, value):
        unknown = [m for m in value if m not in METRICS]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; known: {', '.join(METRICS)}")
        if not value:
            raise ValueError("metrics: the list is empty")
        return value
