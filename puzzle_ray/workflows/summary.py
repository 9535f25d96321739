"""The final summary: parent vs child (parameters, KV cache, measured speed, quality retention), as a rich table
and as Markdown (saved beside the run and logged to MLflow).

It reads the stages' recorded outputs (`StageStatus.outputs`, the JSON form), so it also summarises a run
from its records alone, and is lenient about the solve record's figures."""

from __future__ import annotations

import math

from rich.markup import escape
from rich.table import Table

from ..evaluate.report import EvalReport, _fmt
from .config import WorkflowConfig
from .engine import StageStatus
from .outputs import EvaluateOutput


def _report(status: dict[str, StageStatus]) -> EvalReport:
    return EvaluateOutput.from_json(status["evaluate"].outputs).eval_report


def headline(report: EvalReport) -> list[str]:
    """One sentence per key figure: the speed-up and what quality it cost."""
    lines = []
    for r in report.rows:
        if r.metric.startswith("decode_tokens_per_s@") and math.isfinite(r.ratio):
            lines.append(f"decode throughput {r.metric.split('@')[1] and 'at batch ' + r.metric.split('@')[1]}: "
                         f"{_fmt(r.parent)} -> {_fmt(r.child)} tokens/s ({r.ratio:.2f}x)")
    for r in report.rows:
        if r.section == "quality" and math.isfinite(r.ratio):
            lines.append(f"{r.metric}: parent {_fmt(r.parent)}, child {_fmt(r.child)} (retention {r.ratio:.3f})")
    return lines


def summary_table(cfg: WorkflowConfig, status: dict[str, StageStatus]) -> Table:
    report = _report(status)
    table = Table(title=f"{cfg.name}: parent vs child", caption="; ".join(report.notes) or None)
    for col in ("section", "metric", "parent", "child", "child vs parent", "predicted child"):
        table.add_column(col, justify="left" if col in ("section", "metric") else "right")
    for r in report.rows:
        ratio = f"{r.ratio_name} {r.ratio:.3f}" if math.isfinite(r.ratio) else ""
        table.add_row(r.section, r.metric, _fmt(r.parent), _fmt(r.child), ratio, _fmt(r.predicted_child))
    for c in report.completions:  # greedy completions, side by side (prompt in the metric column)
        table.add_row("completion", escape(c.prompt), escape(c.parent), escape(c.child), "", "")
    return table


def summary_markdown(cfg: WorkflowConfig, status: dict[str, StageStatus]) -> str:
    report = _report(status)
    solve = status["solve"].outputs
    lines = [f"# {cfg.name}: Puzzle child vs parent", ""]
    lines += [f"- {h}" for h in headline(report)]
    constraints = ", ".join(f"`{c}`" for c in cfg.search.constraints) or "nothing"
    lines += ["", f"Search: `{cfg.search.objective}` subject to {constraints}; "
              f"batch size {solve.get('batch_size')}, solver status {solve.get('status')}.", "", "Chosen blocks:", ""]
    lines += [f"- layer {i}: {name}" for i, name in enumerate(solve.get("chosen", []))]
    lines += ["", report.to_markdown().split("\n", 2)[2]]  # the report's table, without its title
    lines += ["", "| stage | status | seconds |", "|---|---|---:|"]
    for name, st in status.items():
        lines.append(f"| {name} | {st.state} | {'' if st.seconds is None else f'{st.seconds:.1f}'} |")
    return "\n".join(lines) + "\n"
