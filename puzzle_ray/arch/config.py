"""`PuzzleConfig`: the Hugging Face config of a heterogeneous (`nemotron-nas`) decoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedConfig
from transformers.modeling_rope_utils import RopeParameters

from .blocks import BlockConfig, BlockConfigError, resolve_block_configs
from .shape import MODEL_TYPE, check_supported, read_config_json


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
        check_supported(self.hidden_act, kwargs.get("sliding_window"))
        self.block_configs = resolve_block_configs(
            self.block_configs, hidden_size=self.hidden_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, num_key_value_heads=self.num_key_value_heads,
            intermediate_size=self.intermediate_size,
        )
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
    file, data = read_config_json(path)
    try:
        if data["model_type"] == MODEL_TYPE:
            return PuzzleConfig(**data)
        from transformers import AutoConfig

        from .convert import puzzle_config_from_hf  # convert builds on this module

        return puzzle_config_from_hf(AutoConfig.for_model(**data))
    except BlockConfigError as e:
        raise BlockConfigError(f"{file}: {e}") from None
