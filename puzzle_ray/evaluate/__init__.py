"""Evaluation of a child against its parent (quality, speed, memory) and publishing to the MLflow registry.
"""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".config": ["EvalConfig", "PublishConfig"],
    ".publish": ["PublishedModel", "PublishError", "pip_requirements", "publish"],
    ".report": ["EvalReport", "Row"],
    ".retention": ["ratio"],
    ".run": ["EvalInputError", "evaluate"],
})

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
