"""Convert Hugging Face parents (Llama, Qwen2, Mistral) into the heterogeneous Puzzle model.

Every layer of the result is the parent's own block; weight names are shared, so the state dict is copied
unchanged and the converted model reproduces the parent's logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedConfig, PreTrainedModel

from .blocks import BlockConfigError, parent_block
from .config import PuzzleConfig
from .modeling import PuzzleForCausalLM
from .weights import model_from_state

SUPPORTED_PARENTS = ("llama", "qwen2", "mistral", PuzzleConfig.model_type)


def puzzle_config_from_hf(hf: PreTrainedConfig) -> PuzzleConfig:
    """The Puzzle config of a parent whose every block is the parent's own."""
    mt = hf.model_type
    if mt == PuzzleConfig.model_type:
        return hf
    if mt not in SUPPORTED_PARENTS:
        raise BlockConfigError(f"model_type={mt!r}: supported parents are {', '.join(SUPPORTED_PARENTS[:-1])}")
    if getattr(hf, "hidden_act", "silu") != "silu":
        raise BlockConfigError(f"hidden_act={hf.hidden_act!r}: only SwiGLU (silu) parents are supported")
    window = getattr(hf, "sliding_window", None)
    if mt == "qwen2" and not getattr(hf, "use_sliding_window", False):
        window = None  # Qwen2 carries a window size but only uses it when use_sliding_window is set
    if window is not None and window < hf.max_position_embeddings:
        raise BlockConfigError(
            f"sliding_window={window}: sliding-window attention is not supported (set it to null only if every "
            "sequence you run is shorter than the window)"
        )
    heads = hf.num_attention_heads
    kv = hf.num_key_value_heads or heads
    block = parent_block(heads, kv, hf.intermediate_size)
    head_dim = getattr(hf, "head_dim", None) or hf.hidden_size // heads
    return PuzzleConfig(
        vocab_size=hf.vocab_size,
        hidden_size=hf.hidden_size,
        num_hidden_layers=hf.num_hidden_layers,
        num_attention_heads=heads,
        head_dim=head_dim,
        block_configs=[block] * hf.num_hidden_layers,
        max_position_embeddings=hf.max_position_embeddings,
        initializer_range=hf.initializer_range,
        rms_norm_eps=hf.rms_norm_eps,
        pad_token_id=hf.pad_token_id,
        bos_token_id=hf.bos_token_id,
        eos_token_id=hf.eos_token_id,
        tie_word_embeddings=hf.tie_word_embeddings,
        rope_parameters=dict(hf.rope_parameters),
        attention_bias=getattr(hf, "attention_bias", False),
        qkv_bias=mt == "qwen2",  # Qwen2: biases on q, k, v but not on o
        mlp_bias=getattr(hf, "mlp_bias", False),
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
        parent = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto", trust_remote_code=False)
    if isinstance(parent, PuzzleForCausalLM):
        return parent
    config = puzzle_config_from_hf(parent.config)
    config._attn_implementation = parent.config._attn_implementation
    child = model_from_state(config, parent.state_dict(), f"the weights of {type(parent).__name__}")
    child.generation_config = parent.generation_config
    return child.to(device=parent.device, dtype=parent.dtype)
