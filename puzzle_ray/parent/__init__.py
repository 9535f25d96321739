"""The embedded default parent: a small Llama-architecture LLM pretrained on the embedded corpus, cached.

    from puzzle_ray.parent import ensure_embedded_parent
    model_dir = ensure_embedded_parent()   # config.json, model.safetensors, tokenizer, quality_report.json

    from puzzle_ray.parent import GGUFParentConfig, ensure_gguf_parent
    model_dir = ensure_gguf_parent(GGUFParentConfig(path="model.gguf"))   # a GGUF file, converted and cached
"""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".build": ["PretrainResult", "data_config", "ensure_embedded_parent", "parent_dir", "parent_key", "pretrain"],
    ".config": [
        "EmbeddedParentConfig",
        "GGUFParentConfig",
        "ParentModelConfig",
        "PretrainConfig",
        "QualityReportConfig",
        "TokenizerTrainingConfig",
    ],
    ".gguf": [
        "GGUFError",
        "ensure_gguf_parent",
        "export_gguf",
        "gguf_puzzle_config",
        "read_gguf_header",
        "resolve_gguf",
    ],
})

__all__ = [
    "EmbeddedParentConfig",
    "GGUFError",
    "GGUFParentConfig",
    "ParentModelConfig",
    "PretrainConfig",
    "PretrainResult",
    "QualityReportConfig",
    "TokenizerTrainingConfig",
    "data_config",
    "ensure_embedded_parent",
    "ensure_gguf_parent",
    "export_gguf",
    "gguf_puzzle_config",
    "parent_dir",
    "parent_key",
    "pretrain",
    "read_gguf_header",
    "resolve_gguf",
]
