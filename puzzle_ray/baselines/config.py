"""Typed configuration of the headline benchmark (`benchmarks/headline.py`): Puzzle against simpler compression
at equal speed, every method sharing one workflow config (parent, library, scenario, GKD, evaluation).

    workflow: ../workflows/tiny-cpu.yaml
    overrides: {distill: {token_budget: 65536}}
    targets: [1.5, 2.0]
    methods: [puzzle, uniform, depth, greedy, random]
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

from pydantic import PositiveInt, ValidationError, field_validator

from ..configs import StrictConfig, read_yaml_mapping, validation_problems
from ..workflows.config import ConfigError, WorkflowConfig, load_config

Method = Literal["puzzle", "hybrid", "uniform", "depth", "greedy", "noop", "random"]
METHODS: tuple[Method, ...] = ("puzzle", "hybrid", "uniform", "depth", "greedy", "noop", "random")


class HeadlineConfig(StrictConfig):
    workflow: Path
    """The Puzzle workflow config every method shares (parent, search space, BLD, scores, measured scenario, GKD,
    evaluation); a relative path is resolved against the folder of the file that names it."""
    overrides: dict[str, Any] = {}
    """Sections merged (recursively) into the workflow config, e.g. `{distill: {token_budget: 65536}}`."""
    targets: list[float] = [1.5, 2.0]
    """Decode-throughput speed-ups over the parent at the scenario's first batch size, as the MIP's cost model
    predicts them (sum of measured per-block decode times); the tables report the measured ones."""
    methods: list[Method] = list(METHODS)
    """puzzle: the workflow's MIP; hybrid: the MIP after decoupled then coupled BLD on the variants the
    decoupled MIP chose (same BLD token total); uniform: one FFN width and KV-head count everywhere
    (Minitron-style); depth: whole layers removed by block influence (ShortGPT-style); greedy: best
    objective-per-ms single-layer changes over the library; noop: the MIP over the parent's blocks with
    attention and/or FFN removed only (no BLD); random: random library architectures at the target speed."""
    hybrid_coupled_fraction: float = 0.5
    """Share of the BLD token total that the hybrid spends on coupled BLD (the rest on its decoupled pass)."""
    hybrid_solutions: PositiveInt = 3
    """Diverse decoupled-MIP solutions per target whose variants make up the hybrid's coupled space."""
    hybrid_targets: list[float] | None = None
    """The targets whose decoupled-MIP solutions make up that space (default: `targets`). One coupled library
    serves every target; fixing these lets a run of other targets (`--targets`) reuse it."""
    random_samples: PositiveInt = 3
    """Random architectures per target (seeds [seed, 0], [seed, 1], ...)."""
    random_band: float = 0.9
    """A random architecture's predicted decode time must lie in [random_band x budget, budget]."""
    seed: int = 0
    """Seed of the random architectures (GKD and BLD use the workflow's own seeds)."""
    results: Path | None = None
    """Markdown file the tables are written to (relative: to the headline config's folder); None: not written."""
    experiment: str = "puzzle-ray-headline"
    """MLflow experiment of the benchmark's runs."""

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("targets: give at least one speed-up")
        bad = [t for t in value if not t > 1]
        if bad:
            raise ValueError(f"targets={value}: a speed-up target must be above 1 (got {bad[0]})")
        if len(set(value)) != len(value):
            raise ValueError(f"targets={value}: a target is repeated")
        return sorted(value)

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[Method]) -> list[Method]:
        if not value:
            raise ValueError("methods: give at least one method")
        if len(set(value)) != len(value):
            raise ValueError(f"methods={value}: a method is repeated")
        return [m for m in METHODS if m in value]  # a fixed order in every table

    @field_validator("hybrid_targets")
    @classmethod
    def _hybrid_targets(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or not all(t > 1 for t in value)):
            raise ValueError(f"hybrid_targets={value}: give speed-ups above 1 (or leave it out)")
        return value

    @field_validator("hybrid_coupled_fraction")
    @classmethod
    def _fraction(cls, value: float) -> float:
        if not 0 < value < 1:
            raise ValueError(f"hybrid_coupled_fraction={value} must be in (0, 1)")
        return value

    @field_validator("random_band")
    @classmethod
    def _band(cls, value: float) -> float:
        if not 0 < value <= 1:
            raise ValueError(f"random_band={value} must be in (0, 1]")
        return value


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` laid over it, mappings merged key by key."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_headline(path: str | Path, **changes: Any) -> tuple[HeadlineConfig, WorkflowConfig]:
    """Validate the headline config (with `changes` to its top-level fields) and the workflow it names, with
    its overrides applied. Raises ConfigError naming the file and every bad field."""
    path = Path(path)
    try:
        data = read_yaml_mapping(path, "headline config")
    except (OSError, ValueError) as e:
        raise ConfigError(str(e)) from None
    data.update({k: v for k, v in changes.items() if v is not None})
    try:
        config = HeadlineConfig(**data)
    except ValidationError as e:
        raise ConfigError(f"{path}: {validation_problems(e, top='(top)')}") from None
    folder = path.resolve().parent
    workflow_path = config.workflow if config.workflow.is_absolute() else folder / config.workflow
    results = config.results if config.results is None or config.results.is_absolute() else folder / config.results
    config = config.model_copy(update={"workflow": workflow_path, "results": results})
    base = load_config(workflow_path)  # the workflow alone must validate (its errors name its own file)
    try:
        workflow = WorkflowConfig(**merge(base.model_dump(mode="json", exclude_unset=True), config.overrides))
    except ValidationError as e:
        raise ConfigError(f"{path}: overrides: {validation_problems(e, top='(top)')}") from None
    return config, workflow
