"""The evaluation report: one row per figure (parent, child, their ratio, the cost model's prediction), saved as
JSON and as a Markdown table, and logged to MLflow with the same numbers."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .retention import RATIO_NAMES, Kind, ratio

JSON_FILE = "eval_report.json"
MARKDOWN_FILE = "eval_report.md"


@dataclass
class Row:
    section: str
    """quality, speed or memory."""
    metric: str
    kind: Kind
    parent: float | None
    child: float | None
    predicted_parent: float | None = None
    """The cost model's prediction (speed and memory rows, when a measured library was given)."""
    predicted_child: float | None = None
    ratio_name: str = ""
    ratio: float = math.nan

    def __post_init__(self):
        self.ratio_name = self.ratio_name or RATIO_NAMES[self.kind]
        self.ratio = ratio(self.kind, self.parent, self.child)


@dataclass
class Completion:
    """One prompt's greedy completion by parent and child."""

    prompt: str
    parent: str
    child: str


@dataclass
class EvalReport:
    parent: str
    child: str
    scenario: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What was not evaluated and why (missing tokenizer, no measured library, ...)."""
    completions: list[Completion] = field(default_factory=list)
    """Greedy completions of a few prompts by parent and child, side by side."""

    def row(self, metric: str, section: str | None = None) -> Row:
        for r in self.rows:
            if r.metric == metric and (section is None or r.section == section):
                return r
        raise KeyError(f"no row {metric!r} in the evaluation report")

    def to_json(self) -> dict[str, Any]:
        return {"parent": self.parent, "child": self.child, "scenario": self.scenario,
                "rows": [asdict(r) for r in self.rows], "notes": self.notes,
                "completions": [asdict(c) for c in self.completions]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvalReport:
        rows = []
        for r in data["rows"]:
            row = Row(**{k: v for k, v in r.items() if k not in ("ratio",)})
            rows.append(row)
        completions = [Completion(**c) for c in data.get("completions", [])]  # older reports have none
        return cls(data["parent"], data["child"], data["scenario"], rows, list(data.get("notes", [])), completions)

    def to_markdown(self) -> str:
        lines = [
            f"# Evaluation: {Path(self.child).name} against {Path(self.parent).name}",
            "",
            f"Scenario: {', '.join(f'{k}={v}' for k, v in self.scenario.items())}",
            "",
            "| section | metric | parent | child | child vs parent | predicted parent | predicted child |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.section} | {r.metric} | {_fmt(r.parent)} | {_fmt(r.child)} | {r.ratio_name} {_fmt(r.ratio)} "
                f"| {_fmt(r.predicted_parent)} | {_fmt(r.predicted_child)} |"
            )
        if self.completions:
            lines += ["", completions_markdown(self.completions)]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def save(self, folder: str | Path) -> tuple[Path, Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        js, md = folder / JSON_FILE, folder / MARKDOWN_FILE
        js.write_text(json.dumps(self.to_json(), indent=1, allow_nan=True) + "\n")
        md.write_text(self.to_markdown())
        return js, md

    def mlflow_metrics(self) -> dict[str, float]:
        """`eval/<section>/<metric>/<parent|child|ratio name|predicted_...>` for every finite figure."""
        out = {}
        for r in self.rows:
            base = f"eval/{r.section}/{_metric_name(r.metric)}"
            for name, value in (("parent", r.parent), ("child", r.child), (r.ratio_name, r.ratio),
                                ("predicted_parent", r.predicted_parent), ("predicted_child", r.predicted_child)):
                if value is not None and math.isfinite(value):
                    out[f"{base}/{name}"] = float(value)
        return out

    def log_to_mlflow(self, run_id: str) -> None:
        """The same figures as metrics, and the report itself (JSON + Markdown) as artifacts under `eval/`."""
        import time

        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = MlflowClient()
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in self.mlflow_metrics().items()])
        client.log_dict(run_id, self.to_json(), f"eval/{JSON_FILE}")
        client.log_text(run_id, self.to_markdown(), f"eval/{MARKDOWN_FILE}")


def _cell(text: str) -> str:
    """Text as one Markdown table cell: visible line breaks, escaped pipes."""
    return text.replace("|", "\\|").replace("\n", "⏎")


def completions_markdown(completions: list[Completion]) -> str:
    """Greedy completions as a Markdown table (prompt, parent's, child's)."""
    lines = ["Greedy completions:", "", "| prompt | parent | child |", "|---|---|---|"]
    for c in completions:
        lines.append(f"| {_cell(c.prompt)} | {_cell(c.parent)} | {_cell(c.child)} |")
    return "\n".join(lines)


def _metric_name(metric: str) -> str:
    return re.sub(r"[^0-9A-Za-z_\-./ ]", "_", metric.replace("@", "_at_"))


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    if isinstance(x, int) or (abs(x) >= 1000 and float(x).is_integer()):
        return f"{int(x):,}"
    return f"{x:.4g}"
