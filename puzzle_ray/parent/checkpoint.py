"""Training checkpoints: weights as safetensors, optimiser state via torch.save (read with weights_only=True).

A checkpoint is a folder written under a temporary name and renamed into place, so a crash mid-save keeps the
previous checkpoint intact and a resume never reads half a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from ..store import staged_folder


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    with staged_folder(folder) as tmp:
        save_model(model, str(tmp / "model.safetensors"))  # handles tied embeddings
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict | None:
    """Restore `model` and `optimizer` in place and return the saved state, or None if there is no checkpoint."""
    folder = Path(folder)
    if not (folder / "state.json").is_file():
        return None
    load_model(model, str(folder / "model.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu"))
    return json.loads((folder / "state.json").read_text())
