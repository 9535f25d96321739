"""Parent families: one descriptor per Hugging Face decoder family that converts into the Puzzle model.

Conversion (`convert.py`), config loading (`summary.load_puzzle_config`), GGUF acceptance (`parent/gguf.py`)
and the export's engine warnings all ask this registry, so adding a family is one `ParentFamily` in
`FAMILIES` (plus, if its blocks differ from every family's so far, one `PuzzleConfig` field, its name in
`FEATURES` and the module code that honours it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..serving.matrix import ENGINE_IDS
from .blocks import BlockConfigError

FEATURES = {"qkv_bias": "biases on q, k and v", "qk_norm": "per-head q/k RMSNorm"}
"""The `PuzzleConfig` fields a family fixes (its flag of the same name), and how messages describe them."""


@dataclass(frozen=True)
class ParentFamily:
    """How one Hugging Face `model_type` maps onto `PuzzleConfig`. Every family is a Llama-style decoder
    (RMSNorm, RoPE, SwiGLU, GQA with Llama's weight names); the fields say where it departs from Llama."""

    name: str
    """How messages name the family ("Qwen3")."""
    model_type: str
    """Hugging Face `config.model_type`."""
    gguf_architecture: str | None = None
    """GGUF `general.architecture` that transformers' GGUF loader reads into this family (None: no GGUF)."""
    qkv_bias: bool = False
    """Biases on q, k and v but not on o, whatever the config says (Qwen2); otherwise `attention_bias`
    (biases on all four projections) is read from the config."""
    qk_norm: bool = False
    """Per-head RMSNorm (weight of shape (head_dim,), shared by all heads) on q and k after the projections
    and before RoPE (Qwen3's `q_norm` / `k_norm`)."""
    sliding_window_flag: str | None = None
    """The config flag without which `sliding_window` is ignored (Qwen's `use_sliding_window`); None: a
    `sliding_window` set in the config is in effect (Mistral). A window in effect is rejected."""
    gguf_head_dim: bool = True
    """Whether transformers' GGUF loader reads `head_dim` from `rope.dimension_count` (Llama, Mistral); Qwen's
    leaves it at the config class's default."""
    class_defaults: tuple[tuple[str, Any], ...] = (("hidden_act", "silu"), ("attention_bias", False),
                                                    ("mlp_bias", False))
    """The fields `shape.family_shape` reads that a GGUF file never states, at the values of this family's
    transformers config class (fields the class lacks are left out), so `inspect` of a GGUF file needs no
    transformers; `tests/test_parent_gguf.py` checks them against the classes."""
    engines: tuple[str, ...] = ENGINE_IDS
    """The engines (ids of `serving.matrix.ENGINE_IDS`) whose nemotron-nas loaders read a child of this family's
    blocks; which sub-block combinations each serves is `serving/matrix.py`'s."""

    def puzzle_fields(self) -> dict[str, bool]:
        """The `PuzzleConfig` fields this family fixes, by name."""
        return {field: getattr(self, field) for field in FEATURES}

    def sliding_window(self, hf) -> int | None:
        """The attention window the Hugging Face config `hf` actually uses (None: full attention)."""
        if self.sliding_window_flag is not None and not getattr(hf, self.sliding_window_flag, False):
            return None
        return getattr(hf, "sliding_window", None)

    def used_by(self, config) -> bool:
        """Whether the Puzzle config `config` has a block feature that only this family's parents bring."""
        return any(on and getattr(config, field, False) for field, on in self.puzzle_fields().items())


_QWEN_DEFAULTS = (("hidden_act", "silu"), ("use_sliding_window", False), ("sliding_window", None))
FAMILIES = (
    ParentFamily("Llama", "llama", gguf_architecture="llama"),
    ParentFamily("Qwen2", "qwen2", gguf_architecture="qwen2", qkv_bias=True, sliding_window_flag="use_sliding_window",
                 gguf_head_dim=False, class_defaults=_QWEN_DEFAULTS),
    ParentFamily("Mistral", "mistral", gguf_architecture="mistral",
                 class_defaults=(("hidden_act", "silu"), ("sliding_window", 4096))),
    ParentFamily("Qwen3", "qwen3", gguf_architecture="qwen3", qk_norm=True, sliding_window_flag="use_sliding_window",
                 gguf_head_dim=False, class_defaults=(*_QWEN_DEFAULTS, ("attention_bias", False), ("head_dim", 128)),
                 engines=()),
)
"""Every supported parent family, in the order messages list them."""

PARENT_MODEL_TYPES = tuple(f.model_type for f in FAMILIES)
GGUF_ARCHITECTURES = tuple(f.gguf_architecture for f in FAMILIES if f.gguf_architecture)


def family_of(model_type: str | None) -> ParentFamily:
    """The family of a Hugging Face `model_type`; a clear error naming the supported ones otherwise."""
    for family in FAMILIES:
        if family.model_type == model_type:
            return family
    raise BlockConfigError(f"model_type={model_type!r}: supported parents are {', '.join(PARENT_MODEL_TYPES)}")


def families_used_by(config) -> list[ParentFamily]:
    """The families whose own block features the Puzzle config `config` (a child or a converted parent) has."""
    return [f for f in FAMILIES if f.used_by(config)]
