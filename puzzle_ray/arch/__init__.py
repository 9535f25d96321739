"""The heterogeneous Puzzle model: block configs, HF config and model, conversion, export, statistics."""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".blocks": ["AttentionConfig", "BlockConfig", "BlockConfigError", "FFNConfig"],
    ".cache": ["PuzzleCache"],
    ".config": ["PuzzleConfig"],
    ".modeling": ["PuzzleDecoderLayer", "PuzzleForCausalLM", "PuzzleModel"],
})

__all__ = [
    "AttentionConfig",
    "BlockConfig",
    "BlockConfigError",
    "FFNConfig",
    "PuzzleCache",
    "PuzzleConfig",
    "PuzzleDecoderLayer",
    "PuzzleForCausalLM",
    "PuzzleModel",
]
