"""`ModelShape`: the fields of a Puzzle config that its arithmetic reads, read without transformers or torch.

`PuzzleConfig` is a transformers config, and transformers' config module imports torch: seconds of CPU before
the first line of output. The parameter and KV-cache accounting (`stats.py`), the summary tables and the
serving checks read only the fields below, so `puzzle-ray inspect` reads a config.json into a `ModelShape` and
answers without either library. Both classes read a file's layers with `blocks.resolve_block_configs`, and a
parent family's config through `family_shape`, so they agree on every file (a test checks it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .blocks import BlockConfig, BlockConfigError, resolve_block_configs
from .families import PARENT_MODEL_TYPES, family_of

MODEL_TYPE = "nemotron-nas"
"""`model_type` of the heterogeneous Puzzle layout (`PuzzleConfig`)."""


@dataclass(frozen=True)
class ModelShape:
    """Sizes, layer variants and the few layout flags of a decoder; the defaults are `PuzzleConfig`'s."""

    vocab_size: int = 32000
    hidden_size: int = 4096
    num_hidden_layers: int = 32
    num_attention_heads: int = 32
    head_dim: int | None = None
    """Per-head width; None: hidden_size // num_attention_heads."""
    block_configs: tuple[BlockConfig, ...] = ()
    """One resolved `BlockConfig` per layer."""
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    mlp_bias: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise BlockConfigError(f"{name}={value!r} must be a positive integer")
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        object.__setattr__(self, "block_configs", tuple(self.block_configs))

    @property
    def blocks(self) -> list[BlockConfig]:
        return list(self.block_configs)

    def fields(self) -> dict[str, Any]:
        """The fields by name (block configs as a list), e.g. to build a `PuzzleConfig`."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["block_configs"] = list(self.block_configs)
        return out

    @classmethod
    def of(cls, config) -> ModelShape:
        """The shape of a `PuzzleConfig` (or any object with these attributes)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})

    @classmethod
    def from_puzzle_fields(cls, data: dict[str, Any]) -> ModelShape:
        """The shape of a `nemotron-nas` config.json's fields, checked as `PuzzleConfig` checks them."""
        check_supported(data.get("hidden_act", "silu"), data.get("sliding_window"))
        defaults = cls()
        get = {f.name: data.get(f.name, getattr(defaults, f.name)) for f in fields(cls) if f.name != "block_configs"}
        get["head_dim"] = data.get("head_dim")
        probe = cls(**get)  # checks the sizes before the layers are read with them
        blocks = resolve_block_configs(
            data.get("block_configs"), hidden_size=probe.hidden_size, num_hidden_layers=probe.num_hidden_layers,
            num_attention_heads=probe.num_attention_heads, num_key_value_heads=data.get("num_key_value_heads"),
            intermediate_size=data.get("intermediate_size"),
        )
        return cls(**{**get, "block_configs": blocks})


def check_supported(hidden_act: str, sliding_window: int | None) -> None:
    """The config-level features puzzle-ray does not implement, refused by name."""
    if hidden_act != "silu":
        raise BlockConfigError(f"hidden_act={hidden_act!r}: only SwiGLU (silu) FFNs are supported")
    if sliding_window is not None:
        raise BlockConfigError("sliding_window: sliding-window attention is not supported by puzzle-ray")


def family_shape(hf) -> ModelShape:
    """The shape of a parent-family config (`families.py`) whose every block is the parent's own; `hf` is a
    transformers config or `StatedFields` over a config.json."""
    family = family_of(hf.model_type)
    if getattr(hf, "hidden_act", "silu") != "silu":
        raise BlockConfigError(f"hidden_act={hf.hidden_act!r}: only SwiGLU (silu) parents are supported")
    window = family.sliding_window(hf)  # e.g. Qwen carries a window size but only uses it behind a flag
    if window is not None and window < hf.max_position_embeddings:
        raise BlockConfigError(
            f"sliding_window={window}: sliding-window attention is not supported (set it to null only if every "
            "sequence you run is shorter than the window)"
        )
    heads = hf.num_attention_heads
    return ModelShape(
        vocab_size=hf.vocab_size,
        hidden_size=hf.hidden_size,
        num_hidden_layers=hf.num_hidden_layers,
        num_attention_heads=heads,
        head_dim=getattr(hf, "head_dim", None) or hf.hidden_size // heads,
        block_configs=resolve_block_configs(
            None, hidden_size=hf.hidden_size, num_hidden_layers=hf.num_hidden_layers, num_attention_heads=heads,
            num_key_value_heads=hf.num_key_value_heads or heads, intermediate_size=hf.intermediate_size,
        ),
        tie_word_embeddings=hf.tie_word_embeddings,
        attention_bias=getattr(hf, "attention_bias", False),
        mlp_bias=getattr(hf, "mlp_bias", False),
        **family.puzzle_fields(),  # e.g. Qwen2's q/k/v biases, Qwen3's q/k norms
    )


class NotStated(Exception):
    """A field a hand-written config.json leaves to its transformers class's default (deliberately not an
    AttributeError, which `getattr(..., default)` would swallow: that default need not be the class's)."""


class StatedFields:
    """A config.json's fields as attributes, for `family_shape`. A file that transformers wrote (it carries
    `transformers_version`) states every field of its config class, so a field it lacks is not one of the class's:
    AttributeError, and `getattr(hf, name, default)` gives what it gives on the class's object. In a hand-written
    file a missing field takes its class's default, which only transformers knows: `NotStated`. `complete` says
    which of the two `data` is, when the rule above does not (e.g. fields read from a GGUF file)."""

    def __init__(self, data: dict[str, Any], complete: bool | None = None):
        self._data = data
        self._complete = "transformers_version" in data if complete is None else complete

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise (AttributeError(name) if self._complete else NotStated(name)) from None


def read_config_json(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(the config file, its fields) for a config.json given as the file or its model folder, with one clear error
    naming the file when it is missing, not text, not a JSON object or of an unsupported `model_type`."""
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
    supported = (*PARENT_MODEL_TYPES, MODEL_TYPE)
    if data.get("model_type") not in supported:
        raise BlockConfigError(f"{file}: model_type={data.get('model_type')!r} is not one of {', '.join(supported)}")
    return file, data


def load_model_shape(path: str | Path) -> ModelShape:
    """The shape of a config.json (a file or model folder) or a .gguf file, without weights. A `nemotron-nas`
    config, a family config that states every field the shape needs (as `save_pretrained` writes them) and a
    GGUF file of a supported family are read without transformers; otherwise (a family config that leaves a field
    to its class's default) through `PuzzleConfig`."""
    path = Path(path)
    if path.suffix.lower() == ".gguf":  # the architecture from the GGUF metadata; nothing is dequantised
        from ..parent.gguf import gguf_model_shape

        return gguf_model_shape(path)
    file, data = read_config_json(path)
    try:
        if data["model_type"] == MODEL_TYPE:
            return ModelShape.from_puzzle_fields(data)
        return family_shape(StatedFields(data))
    except (NotStated, AttributeError):  # a field only transformers knows the value of
        pass
    except BlockConfigError as e:
        raise BlockConfigError(f"{file}: {e}") from None
    from .config import load_puzzle_config

    return ModelShape.of(load_puzzle_config(path))
