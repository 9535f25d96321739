"""Global knowledge distillation (GKD): the assembled child learns from the parent end-to-end on Ray Train.

Loss = cosine_weight * sum over layers of (1 - cos(child, parent hidden state)) + kl_weight * KL(parent || child)
(+ lm_weight * the child's LM loss, off by default), with plain DDP or DeepSpeed ZeRO as the engine.
"""

from .batch_source import BatchSource, TensorBatchSource
from .config import DistillConfig
from .loss import chunked_kl_and_lm, cosine_distance, hidden_cosine_loss
from .models import DistillInputError, check_pair
from .objective import GKDStudent, LossWeights, teacher_targets
from .run import StepBudget, distill, step_budget

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
