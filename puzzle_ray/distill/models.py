"""Parent (teacher) and child (student) for GKD: config-only validation of the pair, then loading in workers."""

from __future__ import annotations

from pathlib import Path

import torch

from ..arch import PuzzleConfig, PuzzleForCausalLM
from ..arch.convert import convert_from_hf
from ..arch.config import load_puzzle_config


class DistillInputError(ValueError):
    """Parent, child or data that GKD cannot use; the message names the file or field."""


def check_pair(parent_dir: str | Path, child_dir: str | Path) -> tuple[PuzzleConfig, PuzzleConfig]:
    """Read both configs (no weights) and check that the child can be distilled from the parent layer by layer."""
    configs = []
    for role, path in (("parent", Path(parent_dir)), ("child", Path(child_dir))):
        if not (path / "config.json").is_file():
            raise DistillInputError(f"{role} {path}: not a model folder (no config.json)")
        try:
            configs.append(load_puzzle_config(path))
        except ValueError as e:
            raise DistillInputError(f"{role}: {e}") from None
    parent, child = configs
    for field in ("hidden_size", "num_hidden_layers", "vocab_size"):
        p, c = getattr(parent, field), getattr(child, field)
        if p != c:
            why = {
                "hidden_size": "hidden states are compared layer by layer",
                "num_hidden_layers": "layers are aligned 1:1 by index",
                "vocab_size": "the KL compares next-token distributions over the same vocabulary",
            }[field]
            raise DistillInputError(f"child {child_dir}: {field}={c} but the parent's is {p} ({why})")
    return parent, child


def load_student(child_dir: str | Path) -> PuzzleForCausalLM:
    """The trainable child, in float32 (DeepSpeed makes its own bf16 copy; DDP autocasts)."""
    model = convert_from_hf(Path(child_dir), dtype=torch.float32)
    model.config.use_cache = False
    return model.train().requires_grad_(True)


def load_teacher(parent_dir: str | Path, dtype: torch.dtype) -> PuzzleForCausalLM:
    """The frozen parent: eval mode (no dropout), no parameter requires grad."""
    model = convert_from_hf(Path(parent_dir), dtype=dtype)
    model.config.use_cache = False
    return model.to(dtype).eval().requires_grad_(False)
