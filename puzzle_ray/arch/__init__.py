"""The heterogeneous Puzzle model: block configs, HF config and model, conversion, export, statistics."""

from .blocks import AttentionConfig, BlockConfig, BlockConfigError, FFNConfig
from .cache import PuzzleCache
from .config import PuzzleConfig
from .modeling import PuzzleDecoderLayer, PuzzleForCausalLM, PuzzleModel

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
