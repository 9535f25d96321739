"""The workflow config: one YAML per scenario (`workflows/*.yaml`), validated by these typed models.

Every section is the typed config of one stage; a field's docstring is its documentation. Unknown keys are
errors that name the key (`extra="forbid"` on every model).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import PositiveInt, ValidationError, model_validator

from ..configs import StrictConfig, read_yaml_mapping, validation_problems
from ..data.config import DataConfig, default_cache_dir
from ..distill.config import DistillConfig
from ..evaluate.config import EvalConfig, PublishConfig
from ..library.config import BLDConfig
from ..library.space import VariantSpace
from ..measure.config import MeasureStageConfig
from ..parent.config import EmbeddedParentConfig, GGUFParentConfig
from ..score.config import ScoreConfig
from ..solve.config import SearchConfig


class ParentConfig(StrictConfig):
    path: Path | None = None
    """A local Hugging Face model folder (a parent family of `arch/families.py`: Llama, Qwen2, Mistral, Qwen3; or
    nemotron-nas; safetensors), or a `.gguf` file (read as `gguf: {path: ...}`); None (and no `gguf`): the
    embedded default parent, pretrained on first use and cached."""
    gguf: GGUFParentConfig | None = None
    """A GGUF file (a family's architecture: llama, qwen2, mistral, qwen3), dequantised, converted and cached on
    first use: `{path: FILE.gguf}` or `{package: DIST, resource: FILE-IN-DIST}`. Excludes `path`."""
    architecture: Path | None = None
    """The parent's config.json, read for dry runs and plans when `path` is not on this machine (no weights)."""
    embedded: EmbeddedParentConfig = EmbeddedParentConfig()
    """The embedded default parent (used when neither `path` nor `gguf` is given)."""

    @model_validator(mode="before")
    @classmethod
    def _gguf_path(cls, data):
        if not isinstance(data, dict) or data.get("path") is None:
            return data
        if data.get("gguf") is not None:
            raise ValueError("parent.path and parent.gguf are mutually exclusive: give one")
        if str(data["path"]).lower().endswith(".gguf"):  # a GGUF file given as `path`
            data = {**data, "gguf": {"path": data["path"]}}
            del data["path"]
        return data

    @property
    def is_embedded(self) -> bool:
        return self.path is None and self.gguf is None


class MLflowConfig(StrictConfig):
    experiment: str = "puzzle-ray"
    """MLflow experiment of the workflow's runs."""
    tracking_uri: str | None = None
    """Tracking URI; default `$MLFLOW_TRACKING_URI`, else a SQLite store `mlflow.db` in the working directory."""


class RayConfig(StrictConfig):
    num_cpus: PositiveInt | None = None
    """CPUs of the local cluster started when there is no RAY_ADDRESS (default: all)."""
    num_gpus: int | None = None
    """GPUs of the local cluster (default: all visible)."""
    object_store_mb: PositiveInt = 512
    """Object store of the local cluster, in MiB."""


class WorkflowConfig(StrictConfig):
    name: str
    """Name of the workflow (MLflow run name, summary title)."""
    store: str = "./puzzle-runs"
    """Artifact store: a local folder or any fsspec URL (s3://...); `$PUZZLE_RAY_STORE` overrides it."""
    cache_dir: Path | None = None
    """Local cache of token data and the embedded parent (default `$PUZZLE_RAY_CACHE`, else ~/.cache/puzzle-ray)."""
    parent: ParentConfig = ParentConfig()
    """The parent LLM to compress."""
    data: DataConfig | None = None
    """Token data of every stage (tokenised with the parent's tokenizer); None: the toy parent's own corpus for
    the toy parent, Python's documentation and sources (`kind: python_docs`) for any other parent."""
    search_space: VariantSpace = VariantSpace()
    """Attention and FFN variants of every layer."""
    bld: BLDConfig = BLDConfig()
    """Block library: initialisation and blockwise local distillation."""
    score: ScoreConfig = ScoreConfig()
    """Replace-1-block scoring."""
    measure: MeasureStageConfig = MeasureStageConfig()
    """The inference scenario and target hardware of the measurements."""
    search: SearchConfig = SearchConfig()
    """The MIP: objective, constraints, solutions."""
    sweep_points: int = 6
    """Throughput targets of the quality-vs-cost frontier drawn beside the solution (0: none)."""
    distill: DistillConfig = DistillConfig()
    """Global knowledge distillation of the assembled child."""
    evaluate: EvalConfig = EvalConfig()
    """Evaluation of the child against the parent."""
    publish: PublishConfig = PublishConfig()
    """MLflow model registry."""
    mlflow: MLflowConfig = MLflowConfig()
    """Experiment tracking."""
    ray: RayConfig = RayConfig()
    """The local Ray cluster (ignored on an existing cluster)."""

    @property
    def store_url(self) -> str:
        return os.environ.get("PUZZLE_RAY_STORE") or self.store

    @property
    def cache(self) -> Path:
        return self.cache_dir or default_cache_dir()


class ConfigError(ValueError):
    """A workflow config that does not validate; the message names the file and every bad field."""


def load_config(path: str | Path) -> WorkflowConfig:
    try:
        data = read_yaml_mapping(path, "workflow config")
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from None
    try:
        return WorkflowConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"{path}: {validation_problems(e, top='(top)')}") from None
