"""What each stage hands to the stages after it (and to the summary): one small frozen dataclass per stage.

A finished stage's output is kept, as `to_json()`, under `outputs` in its `record.json`; a later run reads it
back with `from_json` instead of running the stage again. The JSON form is the record's layout, so it must not
change without a stage version bump: records of finished stages are read by later code.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any


def _numbers(values: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of `values` (booleans as 0 / 1), under MLflow-safe metric names."""
    out = {}
    for k, v in values.items():
        if isinstance(v, (bool, int, float)) and math.isfinite(float(v)):
            out[re.sub(r"[^0-9A-Za-z_\-./ :]", "_", f"{prefix}{k}")] = float(v)
    return out


@dataclass(frozen=True)
class StageOutput:
    """Base of the stage outputs: JSON form = the fields, by name."""

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StageOutput:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def key_figures(self) -> dict[str, float]:
        """The numbers a reviewer wants on the stage's MLflow run (default: the numeric fields)."""
        return _numbers(self.to_json())


@dataclass(frozen=True)
class ParentOutput(StageOutput):
    model_dir: str
    """The parent in the nemotron-nas layout (a local folder)."""
    tokens: str
    """The token cache folder every later stage and worker reads (`data.open_token_cache`)."""
    train_tokens: int
    """Tokens in the cache's training split."""
    validation_tokens: int
    """Tokens in the held-out split."""
    quality_report: dict[str, Any] | None = None
    """How well the embedded parent is trained (None for other parents)."""


@dataclass(frozen=True)
class LibraryRef(StageOutput):
    """A stage whose product is a library record: `Library.read(store, library)`."""

    library: str
    """Store prefix of `block_library.json` + `library_meta.json`."""
    entries: int | None = None
    """(layer, variant) entries in the record (None in records of older runs)."""

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        if data["entries"] is None:  # records of older runs keep their layout exactly
            del data["entries"]
        return data


@dataclass(frozen=True)
class MeasureOutput(LibraryRef):
    """The search space's variants with measured costs (no weights, no metrics)."""


@dataclass(frozen=True)
class ScoreOutput(LibraryRef):
    """The built library with replace-1-block metrics."""


@dataclass(frozen=True)
class LibraryOutput(StageOutput):
    """The BLD-trained block library."""

    library: str
    """Store prefix of the library record (the build's content key, `library/<hash>`)."""
    entries: int
    """(layer, variant) entries in the library."""
    reused: bool
    """A finished build with the same content key was found and returned without training."""


@dataclass(frozen=True)
class CheckOutput(StageOutput):
    feasible: bool
    """Some architecture of the search space meets the constraints (the stage fails otherwise)."""
    smallest: dict[str, Any]
    """Costs of the smallest such architecture (by parameters)."""

    def key_figures(self) -> dict[str, float]:
        return _numbers({"feasible": self.feasible}) | _numbers(self.smallest, "smallest.")


@dataclass(frozen=True)
class SolveOutput(StageOutput):
    """The MIP's best architecture, and the library (scores + measured costs) it was solved on."""

    library: str
    """Store prefix of the library the MIP read (`Library.read(store, library)`)."""
    chosen: list[str]
    """Per layer, the chosen variant's name."""
    objective: float
    """The objective's value for the chosen architecture."""
    costs: dict[str, Any]
    """Its constrained costs (sums over the layers and the non-block part)."""
    batch_size: int | None
    """The batch size it was solved at (None when the library knows no batch size)."""
    status: str
    """The solver's status for it."""

    def key_figures(self) -> dict[str, float]:
        return _numbers({"objective": self.objective, "batch_size": self.batch_size}) | _numbers(self.costs, "costs.")


@dataclass(frozen=True)
class ModelOutput(StageOutput):
    model_dir: str
    """The model, a local folder in the nemotron-nas layout."""


@dataclass(frozen=True)
class EvaluateOutput(StageOutput):
    report: dict[str, Any]
    """The evaluation report, `EvalReport.to_json()`."""

    @property
    def eval_report(self):
        """The report as an `EvalReport`."""
        from ..evaluate.report import EvalReport

        return EvalReport.from_json(self.report)

    def key_figures(self) -> dict[str, float]:
        return {}  # the evaluation logs every figure itself (`EvalReport.log_to_mlflow`)


@dataclass(frozen=True)
class PublishOutput(StageOutput):
    published: bool
    """The child was registered (False when the plan names no registered model)."""
    model_uri: str | None = None
    """`models:/<name>@<alias>` of the registered child."""
    version: str | None = None
    """The registered model version."""

    def key_figures(self) -> dict[str, float]:
        return {"version": float(self.version)} if self.published and str(self.version).isdigit() else {}

    def to_json(self) -> dict[str, Any]:
        return super().to_json() if self.published else {"published": False}

