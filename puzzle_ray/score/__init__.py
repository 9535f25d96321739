"""Replace-1-block scoring: how much quality each library entry costs when it replaces the parent's block."""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".config": ["METRICS", "ScoreConfig"],
    ".score": ["score_library", "validation_batches"],
})

__all__ = ["METRICS", "ScoreConfig", "score_library", "validation_batches"]
