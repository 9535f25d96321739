"""The workflow config: one YAML per scenario (`workflows/*.yaml`), validated by these typed models.

Every section is the typed config of one stage; a field's docstring is its documentation. Unknown keys are
errors that name the key (`extra="forbid"` on every model).

`load_config(path, ["bld.token_budget=49152"])` lays command-line overrides over the file before validating
(`puzzle-ray run CONFIG KEY=VALUE ...`): a path that names no field, or a value that does not validate, is a
`ConfigError` naming the field and the override; `config_yaml(cfg)` writes the resolved plan back as YAML.
"""

from __future__ import annotations

import copy
import os
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, PositiveInt, ValidationError, field_validator, model_validator

from ..configs import StrictConfig, error_message, read_yaml_mapping, sorted_errors
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
    """Throughput targets of the quality-vs-cost frontier drawn beside the solution (0: none; else at least 2)."""
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

    @field_validator("sweep_points")
    @classmethod
    def _sweep_points(cls, value: int) -> int:
        if value == 1 or value < 0:
            raise ValueError(f"sweep_points={value}: give 0 (no frontier) or at least 2 points")
        return value

    @property
    def store_url(self) -> str:
        return os.environ.get("PUZZLE_RAY_STORE") or self.store

    @property
    def cache(self) -> Path:
        return self.cache_dir or default_cache_dir()


class ConfigError(ValueError):
    """A workflow config that does not validate; the message names the file and every bad field."""


def load_config(path: str | Path, overrides: Sequence[str | Override] = ()) -> WorkflowConfig:
    """The plan in `path`, with `overrides` (`KEY=VALUE`, see `apply_overrides`) laid over it, validated."""
    try:
        data = read_yaml_mapping(path, "workflow config")
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from None
    parsed = parse_overrides(overrides)
    data = apply_overrides(data, parsed)
    try:
        return WorkflowConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"{path}: {_problems(e, parsed)}") from None


# -- command-line overrides: `puzzle-ray run CONFIG bld.token_budget=49152 search.num_solutions=3` ------------

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Override:
    """One `KEY=VALUE` of the command line: the field path (`bld.token_budget`) and its value, read as YAML."""

    text: str
    keys: tuple[str, ...]
    value: Any


def parse_overrides(items: Sequence[str | Override]) -> list[Override]:
    """`KEY=VALUE` items as overrides; KEY is a dotted field path whose every name is a field of the section
    before it, VALUE a YAML value (`49152`, `true`, `null`, `[1, 8]`, `sqlite:///m.db`; `KEY=` is null).
    An `Override` given as such (a value that is not YAML text, from a command's own option) is checked alike."""
    import yaml

    parsed = []
    for text in items:
        if isinstance(text, Override):
            _check_keys(text.keys, text.text)
            parsed.append(text)
            continue
        key, eq, raw = text.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key):
            raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted field path, "
                              "e.g. bld.token_budget=49152")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as e:
            problem = str(e).splitlines()[0]
            raise ConfigError(f"override {text}: the value is not valid YAML ({problem})") from None
        keys = tuple(key.split("."))
        _check_keys(keys, text)
        parsed.append(Override(text, keys, value))
    return parsed


def apply_overrides(data: dict[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """A copy of the plan's mapping with each override set at its path (later ones win; missing sections are
    created; a whole section may be given as a YAML mapping)."""
    data = copy.deepcopy(data)
    for o in overrides:
        node = data
        for depth, key in enumerate(o.keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(o.keys[: depth + 1])
                raise ConfigError(f"override {o.text}: {where} is {child!r} in the file, not a section")
            node = child
        node[o.keys[-1]] = o.value
    return data


def config_yaml(cfg: WorkflowConfig) -> str:
    """The fully resolved plan (every field, defaults included) as YAML that `load_config` reads back equal."""
    import yaml

    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=120)


def _check_keys(keys: tuple[str, ...], text: str) -> None:
    """Each name of the path is a field of the typed section it falls in (as far as sections are typed: a field
    that holds a mapping, a list or a choice of models is validated by pydantic with the rest)."""
    model: type[BaseModel] | None = WorkflowConfig
    for depth, key in enumerate(keys):
        if model is None:
            return
        if key not in model.model_fields:
            section = ".".join(keys[:depth]) or "the plan"
            known = ", ".join(model.model_fields)
            raise ConfigError(f"override {text}: {section} has no field {key!r} (fields: {known})")
        model = _section_model(model.model_fields[key].annotation)


def _section_model(annotation) -> type[BaseModel] | None:
    """The one pydantic model a field holds (`X`, `X | None`), else None."""
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, BaseModel) else None
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Annotated:
        args = args[:1]
    models = [m for a in args if (m := _section_model(a)) is not None]
    return models[0] if len(models) == 1 and len(args) == 1 else None


def _problems(error: ValidationError, overrides: Sequence[Override]) -> str:
    """Like `validation_problems`, each bad field that an override set naming that override."""
    items = []
    for err in sorted_errors(error):
        loc = tuple(str(k) for k in err["loc"])
        item = f"{'.'.join(loc) or '(top)'}: {error_message(err)}"
        # the override that set this field, or a section around it (the last one given wins, as in the data)
        culprit = next((o for o in reversed(overrides) if loc and (loc[: len(o.keys)] == o.keys
                                                                   or o.keys[: len(loc)] == loc)), None)
        items.append(f"{item} (override {culprit.text})" if culprit else item)
    return "; ".join(items)
