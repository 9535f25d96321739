"""Global knowledge distillation (GKD): the assembled child learns from the parent end-to-end on Ray Train.

Loss = cosine_weight * sum over layers of (1 - cos(child, parent hidden state)) + kl_weight * KL(parent || child)
(+ lm_weight * the child's LM loss, off by default), with plain DDP or DeepSpeed ZeRO as the engine.
"""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".batch_source": ["BatchSource", "TensorBatchSource"],
    ".config": ["DistillConfig"],
    ".loss": ["chunked_kl_and_lm", "cosine_distance", "hidden_cosine_loss"],
    ".models": ["DistillInputError", "check_pair"],
    ".objective": ["GKDStudent", "LossWeights", "teacher_targets"],
    ".run": ["StepBudget", "distill", "step_budget"],
})

__all__ = [
    "BatchSource",
    "DistillConfig",
    "DistillInputError",
    "StepBudget",
    "GKDStudent",
    "LossWeights",
    "TensorBatchSource",
    "check_pair",
    "chunked_kl_and_lm",
    "cosine_distance",
    "distill",
    "hidden_cosine_loss",
    "step_budget",
    "teacher_targets",
]
