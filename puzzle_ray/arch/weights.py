"""Read parts of a safetensors checkpoint (single file or sharded with an index) without loading the rest.

BLD actors and scoring workers each need only a few layers of a parent that may not fit in one process.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


def checkpoint_files(model_dir: str | Path) -> dict[str, Path]:
    """tensor name -> the safetensors file that holds it."""
    model_dir = Path(model_dir)
    if (model_dir / INDEX).is_file():
        index = json.loads((model_dir / INDEX).read_text())["weight_map"]
        return {name: model_dir / file for name, file in index.items()}
    if (model_dir / SINGLE).is_file():
        with safe_open(model_dir / SINGLE, "pt") as f:
            return {name: model_dir / SINGLE for name in f.keys()}
    raise FileNotFoundError(f"{model_dir}: no {SINGLE} or {INDEX} (only safetensors checkpoints are read)")


def load_tensors(model_dir: str | Path, prefix: str, strip: bool = True) -> dict[str, torch.Tensor]:
    """All tensors whose name starts with `prefix` (the prefix removed when `strip`)."""
    by_file: dict[Path, list[str]] = {}
    for name, file in checkpoint_files(model_dir).items():
        if name.startswith(prefix):
            by_file.setdefault(file, []).append(name)
    out = {}
    for file, names in by_file.items():
        with safe_open(file, "pt") as f:
            for name in names:
                out[name[len(prefix) :] if strip else name] = f.get_tensor(name)
    return out


def fingerprint(model_dir: str | Path) -> str:
    """Content hash of a checkpoint: its config and every weight file's bytes (streamed)."""
    model_dir = Path(model_dir)
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for file in sorted(set(checkpoint_files(model_dir).values())):
        with open(file, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def model_from_state(config, state: dict[str, torch.Tensor], what: str = "checkpoint"):
    """A `PuzzleForCausalLM` built on the meta device and given `state` without copying (eval mode).

    Every parameter must be in `state` (the LM head may be absent when tied); RoPE buffers, created on meta,
    are rebuilt for real. Raises ValueError naming the missing / unexpected tensors of `what`.
    """
    from .modeling import PuzzleForCausalLM

    with torch.device("meta"):
        model = PuzzleForCausalLM(config)
    state = dict(state)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{what} does not match the model: missing={missing[:5]} unexpected={unexpected[:5]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    return model.eval()
