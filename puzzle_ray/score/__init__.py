"""Replace-1-block scoring: how much quality each library entry costs when it replaces the parent's block."""

from .config import METRICS, ScoreConfig
from .score import score_library, validation_batches

__all__ = ["METRICS", "ScoreConfig", "score_library", "validation_batches"]
