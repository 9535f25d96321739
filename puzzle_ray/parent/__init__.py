"""The embedded default parent: a small Llama-architecture LLM pretrained on the embedded corpus, cached.

    from puzzle_ray.parent import ensure_embedded_parent
    model_dir = ensure_embedded_parent()   # config.json, model.safetensors, tokenizer, quality_report.json
"""

from .build import PretrainResult, data_config, ensure_embedded_parent, parent_dir, parent_key, pretrain
from .config import (
    EmbeddedParentConfig,
    ParentModelConfig,
    PretrainConfig,
    QualityReportConfig,
    TokenizerTrainingConfig,
)

__all__ = [
    "EmbeddedParentConfig",
    "ParentModelConfig",
    "PretrainConfig",
    "PretrainResult",
    "QualityReportConfig",
    "TokenizerTrainingConfig",
    "data_config",
    "ensure_embedded_parent",
    "parent_dir",
    "parent_key",
    "pretrain",
]
