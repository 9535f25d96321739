"""Evaluation of a child against its parent (quality, speed, memory) and publishing to the MLflow registry.
"""

from .config import EvalConfig, PublishConfig
from .publish import PublishedModel, PublishError, pip_requirements, publish
from .report import EvalReport, Row
from .retention import ratio
from .run import EvalInputError, evaluate

__all__ = [
    "EvalConfig",
    "PublishConfig",
    "EvalInputError",
    "EvalReport",
    "PublishError",
    "PublishedModel",
    "Row",
    "evaluate",
    "pip_requirements",
    "publish",
    "ratio",
]
