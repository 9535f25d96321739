"""`PuzzleConfig`: the Hugging Face config of a heterogeneous (`nemotron-nas`) decoder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedConfig
from transformers.modeling_rope_utils import RopeParameters

from .blocks import BlockConfig, BlockConfigError, parent_block
from .families import PARENT_MODEL_TYPES

MODEL_TYPE = "nemotron-nas"


@dataclass(repr=False)
class PuzzleConfig(PreTrainedConfig):
    """A Llama-family decoder whose layers each have their own attention and FFN variant.

    Reads and writes the published `nemotron-nas` layout (`block_configs`, one entry per layer). When
    `block_configs` is omitted, every layer is the homogeneous block given by `num_key_value_heads` and
    `intermediate_size` (handy to build a parent from scratch).
    """

    model_type = MODEL_TYPE
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 32000
    hidden_size: int = 4096
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    head_dim: int | None = None
    """Per-head width; published configs leave it out (hidden_size // num_attention_heads)."""
    block_configs: list | None = None
    """One `BlockConfig` (or its published dict) per layer."""
    intermediate_size: int | None = None
    """Only used to build homogeneous `block_configs`; published configs set it to null."""
    num_key_value_heads: int | None = None
    """Only used to build homogeneous `block_configs`; published configs set it to null."""
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    tie_word_embeddings: bool = False
    rope_parameters: RopeParameters | dict | None = None
    attention_bias: bool = False
    """Bias on q, k, v and o projections (Llama's flag)."""
    qkv_bias: bool = False
    """Bias on q, k, v only (Qwen2's layout)."""
    qk_norm: bool = False
    """Per-head RMSNorm on q and k before RoPE (Qwen3's layout); written to config.json only when set, so
    configs of other parents, and the hashes of stages that read them, are unchanged."""
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    pretraining_tp: int | None = 1

    def __post_init__(self, **kwargs: Any):
        kwargs.pop("auto_map", None)  # published files point at remote code; we never use it
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.hidden_act != "silu":
            raise BlockConfigError(f"hidden_act={self.hidden_act!r}: only SwiGLU (silu) FFNs are supported")
        if kwargs.get("sliding_window") is not None:
            raise BlockConfigError("sliding_window: sliding-window attention is not supported by puzzle-ray")
        if self.block_configs is None:
            kv = self.num_key_value_heads or self.num_attention_heads
            size = self.intermediate_size or 4 * self.hidden_size
            self.block_configs = [parent_block(self.num_attention_heads, kv, size)] * self.num_hidden_layers
        blocks = [BlockConfig.from_dict(b, i, self.num_attention_heads) for i, b in enumerate(self.block_configs)]
        if len(blocks) != self.num_hidden_layers:
            raise BlockConfigError(
                f"block_configs has {len(blocks)} entries but num_hidden_layers={self.num_hidden_layers}"
            )
        for i, block in enumerate(blocks):
            block.validate(i, self.num_attention_heads)
        self.block_configs = [b.resolve(self.hidden_size) for b in blocks]
        super().__post_init__(**kwargs)

    @property
    def blocks(self) -> list[BlockConfig]:
        return self.block_configs

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["block_configs"] = [b.to_dict(self.hidden_size) for b in self.block_configs]
        if not out.get("qk_norm"):
            out.pop("qk_norm", None)
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        out = super().to_diff_dict()
        out["block_configs"] = [b.to_dict(self.hidden_size) for b in self.block_configs]
        return out


def load_puzzle_config(path: str | Path) -> PuzzleConfig:
    """A `PuzzleConfig` from a `nemotron-nas` `config.json` or one of a parent family (`families.py`), given
    as the file or its model folder."""
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"{file}: no such config file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{file}: not a text file (not UTF-8: {e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object of config fields, not {type(data).__name__}")
    model_type = data.get("model_type")
    supported = (*PARENT_MODEL_TYPES, MODEL_TYPE)
    if model_type not in supported:
        raise BlockConfigError(f"{file}: model_type={model_type!r} is not one of {', '.join(supported)}")
    try:
        if model_type == MODEL_TYPE:
            return PuzzleConfig(**data)
        from transformers import AutoConfig

        from .convert import puzzle_config_from_hf  # convert builds on this module

        return puzzle_config_from_hf(AutoConfig.for_model(**data))
    except BlockConfigError as e:
        raise BlockConfigError(f"{file}: {e}") from None
