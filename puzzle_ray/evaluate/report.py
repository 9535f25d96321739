"""The evaluation report: one row per figure (parent, child, their ratio, the cost model's prediction), saved as
JSON and as a Markdown table, and logged to MLflow with the same numbers."""

from __future__ import annotations

from ..ui import fmt_number

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .retention import RATIO_NAMES, Kind, ratio, wilson_interval

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
    examples: int | None = None
    """For accuracies: how many independent examples (prompts, episodes) each model was scored on."""
    chance: float | None = None
    """For accuracies: what guessing uniformly among the labels scores."""

    def __post_init__(self):
        self.ratio_name = self.ratio_name or RATIO_NAMES[self.kind]
        self.ratio = ratio(self.kind, self.parent, self.child)

    def interval(self, role: str) -> tuple[float, float]:
        """The 95 % interval of the parent's or child's accuracy (NaN when the row is not an accuracy)."""
        return wilson_interval(getattr(self, role), self.examples) if self.examples else (math.nan, math.nan)

    def cell(self, role: str) -> str:
        """The parent's or child's figure, with its 95 % interval for accuracies: `0.83 [0.74, 0.9]`."""
        low, high = self.interval(role)
        value = _fmt(getattr(self, role))
        return f"{value} [{_fmt(low)}, {_fmt(high)}]" if math.isfinite(low) else value

    def ratio_cell(self) -> str:
        return f"{self.ratio_name} {_fmt(self.ratio)}" if self.ratio_name and math.isfinite(self.ratio) else ""


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
            "Accuracies show their 95 % interval (Wilson, over the examples scored) and what guessing scores.",
            "",
            "| section | metric | parent | child | child vs parent | chance | predicted parent | predicted child |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.section} | {r.metric} | {r.cell('parent')} | {r.cell('child')} | {r.ratio_cell()} "
                f"| {_fmt(r.chance)} | {_fmt(r.predicted_parent)} | {_fmt(r.predicted_child)} |"
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

    def role_metrics(self, role: str) -> dict[str, float]:
        """One model's figures (`role` parent or child) under names shared by both: `lm_loss`,
        `decode_tokens_per_s_at_1`, ... (what MLflow's Compare view lines up)."""
        out = {}
        for r in self.rows:
            value = getattr(r, role)
            if value is not None and math.isfinite(value):
                out[_metric_name(r.metric)] = float(value)
        return out

    def log_to_mlflow(self, run_id: str, compare_runs: bool = True) -> list[str]:
        """The same figures as metrics, and the report itself (JSON + Markdown) as artifacts under `eval/`.

        Also one nested run per model ("parent", "child") holding that model's figures under the same names,
        so that selecting the two runs and pressing Compare in MLflow's UI shows them side by side (unless
        `compare_runs` is False). Returns those two runs' ids."""
        import time

        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param

        client = MlflowClient()
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in self.mlflow_metrics().items()])
        client.log_dict(run_id, self.to_json(), f"eval/{JSON_FILE}")
        client.log_text(run_id, self.to_markdown(), f"eval/{MARKDOWN_FILE}")
        experiment_id = client.get_run(run_id).info.experiment_id
        role_runs = []
        for role in ("parent", "child") if compare_runs else ():
            run = client.create_run(experiment_id, run_name=f"evaluation: {role}",
                                    tags={"mlflow.parentRunId": run_id, "puzzle_ray.eval_role": role})
            metrics = [Metric(k, v, now, 0) for k, v in self.role_metrics(role).items()]
            params = [Param("model", getattr(self, role)), Param("role", role)]
            params += [Param(f"scenario.{k}", str(v)[:6000]) for k, v in self.scenario.items()]
            client.log_batch(run.info.run_id, metrics=metrics, params=params)
            client.set_terminated(run.info.run_id, "FINISHED")
            role_runs.append(run.info.run_id)
        return role_runs


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


_fmt = fmt_number  # one number format for reports, summaries and cards (puzzle_ray/ui.py)
