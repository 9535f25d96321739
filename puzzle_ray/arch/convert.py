"""Convert Hugging Face parents (the families of `families.py`) into the heterogeneous Puzzle model.

Every layer of the result is the parent's own block; weight names are shared, so the state dict is copied
unchanged and the converted model reproduces the parent's logits.
"""

from __future__ import annotations

import pickle

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedConfig, PreTrainedModel

from .config import PuzzleConfig
from .families import PARENT_MODEL_TYPES
from .modeling import PuzzleForCausalLM
from .shape import family_shape
from .weights import model_from_state

SUPPORTED_PARENTS = (*PARENT_MODEL_TYPES, PuzzleConfig.model_type)
"""Every `model_type` whose config converts: the parent families and the Puzzle layout itself."""


def puzzle_config_from_hf(hf: PreTrainedConfig) -> PuzzleConfig:
    """The Puzzle config of a parent whose every block is the parent's own (its shape: `shape.family_shape`)."""
    if hf.model_type == PuzzleConfig.model_type:
        return hf
    return PuzzleConfig(
        **family_shape(hf).fields(),
        max_position_embeddings=hf.max_position_embeddings,
        initializer_range=hf.initializer_range,
        rms_norm_eps=hf.rms_norm_eps,
        pad_token_id=hf.pad_token_id,
        bos_token_id=hf.bos_token_id,
        eos_token_id=hf.eos_token_id,
        rope_parameters=dict(hf.rope_parameters),
        attention_dropout=getattr(hf, "attention_dropout", 0.0),
        dtype=hf.dtype,
    )


def convert_from_hf(parent: PreTrainedModel | str | Path, dtype: torch.dtype | None = None) -> PuzzleForCausalLM:
    """A Puzzle model that computes exactly what `parent` (a model or a local directory) computes."""
    if not isinstance(parent, PreTrainedModel):
        path = Path(parent)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path}: not a Hugging Face model directory (no config.json)")
        AutoConfig.from_pretrained(path, trust_remote_code=False)  # fail early on an unknown model_type
        try:
            parent = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto", trust_remote_code=False)
        except pickle.UnpicklingError as e:  # a .bin checkpoint is read with weights_only: code in it is refused
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            why = next((line for line in lines if "GLOBAL" in line), lines[0] if lines else "")
            raise ValueError(f"{path}: refused its pickle checkpoint, which holds more than tensors ({why}); "
                             "give the weights as safetensors") from None
    if isinstance(parent, PuzzleForCausalLM):
        return parent
    config = puzzle_config_from_hf(parent.config)
    config._attn_implementation = parent.config._attn_implementation
    config._name_or_path = parent.config._name_or_path  # where it came from (the export's model card reads it)
    child = model_from_state(config, parent.state_dict(), f"the weights of {type(parent).__name__}")
    child.generation_config = parent.generation_config
    return child.to(device=parent.device, dtype=parent.dtype)
