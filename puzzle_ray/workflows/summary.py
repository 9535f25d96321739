"""The final summary: parent vs child (parameters, KV cache, measured speed, quality), as a rich table and as
Markdown (saved beside the run, logged to MLflow and shown as the workflow run's description).

Honest by construction: a ratio is shown only where it means something (no "retention" of a KL divergence),
accuracies carry their 95 % interval and the chance level, and the cost model's predicted speed stands beside
the measured one with a warning where the two differ by more than `PREDICTION_TOLERANCE`.

It reads the stages' recorded outputs (`StageStatus.outputs`, the JSON form), so it also summarises a run
from its records alone, and is lenient about the solve record's figures."""

from __future__ import annotations

import math
import re

from rich.markup import escape
from rich.table import Table

from ..evaluate.report import EvalReport, Row, _fmt
from ..serving.check import engine_list
from .config import WorkflowConfig
from .engine import StageStatus
from .outputs import EvaluateOutput

PREDICTION_TOLERANCE = 0.10
"""Relative difference between the cost model's predicted and the measured speed above which we warn."""


def _report(status: dict[str, StageStatus]) -> EvalReport:
    return EvaluateOutput.from_json(status["evaluate"].outputs).eval_report


def _batch(metric: str) -> str:
    return metric.split("@")[1] if "@" in metric else ""


def headline(report: EvalReport) -> list[str]:
    """One sentence per key figure: the speed-up and what quality it cost."""
    lines = []
    for r in report.rows:
        if r.metric.startswith("decode_tokens_per_s@") and math.isfinite(r.ratio):
            lines.append(f"decode throughput at batch {_batch(r.metric)}: "
                         f"{_fmt(r.parent)} -> {_fmt(r.child)} tokens/s ({r.ratio:.2f}x)")
    for r in report.rows:
        if r.section != "quality":
            continue
        if r.kind == "divergence":
            lines.append(f"{r.metric}: {_fmt(r.child)} nats per token (0 for the parent itself)")
        elif r.chance is not None:
            lines.append(f"{r.metric}: parent {r.cell('parent')}, child {r.cell('child')} "
                         f"(95 % intervals over {r.examples} examples; chance {_fmt(r.chance)})")
        elif math.isfinite(r.ratio):
            lines.append(f"{r.metric}: parent {_fmt(r.parent)}, child {_fmt(r.child)} ({r.ratio_name} {r.ratio:.3f})")
    return lines


MEMORY_NAMES = {"num_params": "params", "kv_bytes_per_token": "kv"}


def headline_metrics(report: EvalReport) -> dict[str, float]:
    """The workflow run's metrics: measured speed-ups, memory fractions, quality retentions, the KL from the
    parent (names MLflow accepts: `decode_speedup_at_1`, `params_fraction`, `top1_accuracy_retention`, ...)."""
    out = {}
    for r in report.rows:
        at = f"_at_{_batch(r.metric)}" if "@" in r.metric else ""
        base = r.metric.split("@")[0].split(" ")[0]
        if r.kind == "divergence":
            name, value = base, r.child
        elif not r.ratio_name:
            continue
        elif r.section == "speed":
            name, value = f"{'decode' if base.startswith('decode') else 'prefill'}_speedup{at}", r.ratio
        elif r.section == "memory":
            name, value = f"{MEMORY_NAMES.get(base, base)}_fraction{at}", r.ratio
        else:
            name, value = f"{base}{at}_{r.ratio_name}", r.ratio
        if value is not None and math.isfinite(value):
            out[re.sub(r"[^0-9A-Za-z_\-./ :]", "_", name)] = float(value)
    return out


def prediction_warnings(report: EvalReport, tolerance: float = PREDICTION_TOLERANCE) -> list[str]:
    """Speed rows whose cost-model prediction is more than `tolerance` away from the measurement."""
    out = []
    for r in report.rows:
        if r.section != "speed":
            continue
        for role in ("parent", "child"):
            measured, predicted = getattr(r, role), getattr(r, f"predicted_{role}")
            if predicted is None or not measured or not math.isfinite(measured):
                continue
            off = predicted / measured - 1
            if abs(off) > tolerance:
                out.append(f"{role} {r.metric}: predicted {_fmt(predicted)}, measured {_fmt(measured)} "
                           f"({off:+.0%}): the per-block timings the MIP used do not add up to the whole model "
                           "here; the measured figure is the one to trust")
    return out


def _accuracy_rows(report: EvalReport) -> list[Row]:
    return [r for r in report.rows if r.chance is not None]


def summary_table(cfg: WorkflowConfig, status: dict[str, StageStatus]) -> Table:
    report = _report(status)
    warnings = prediction_warnings(report)
    caption = "; ".join(report.notes + [f"[yellow]{escape(w)}[/]" for w in warnings]) or None
    table = Table(title=f"{cfg.name}: parent vs child", caption=caption)
    for col in ("section", "metric", "parent", "child", "child vs parent", "chance", "predicted parent",
                "predicted child"):
        table.add_column(col, justify="left" if col in ("section", "metric") else "right")
    for r in report.rows:
        table.add_row(r.section, r.metric, r.cell("parent"), r.cell("child"), r.ratio_cell(), _fmt(r.chance),
                      _fmt(r.predicted_parent), _fmt(r.predicted_child))
    for c in report.completions:  # greedy completions, side by side (prompt in the metric column)
        table.add_row("completion", escape(c.prompt), escape(c.parent), escape(c.child), "", "", "", "")
    return table


def summary_markdown(cfg: WorkflowConfig, status: dict[str, StageStatus]) -> str:
    report = _report(status)
    solve = status["solve"].outputs
    lines = [f"# {cfg.name}: Puzzle child vs parent", ""]
    lines += [f"- {h}" for h in headline(report)]
    warnings = prediction_warnings(report)
    if warnings:
        lines += ["", "**Warning: predicted and measured speed differ by more than "
                      f"{PREDICTION_TOLERANCE:.0%}**", ""] + [f"- {w}" for w in warnings]
    if any(r.child is not None and r.chance is not None and r.interval("child")[0] <= r.chance
           for r in _accuracy_rows(report)):
        lines += ["", "Some accuracies are not distinguishable from chance (their interval reaches the chance "
                      "level): read them as no in-context ability, not as a retention."]
    constraints = ", ".join(f"`{c}`" for c in cfg.search.constraints) or "nothing"
    engines = (f"; over the variants that {engine_list(cfg.search.engines)} serve (`search.engines`)"
               if cfg.search.engines else "")
    lines += ["", f"Search: `{cfg.search.objective}` subject to {constraints}{engines}; "
              f"batch size {solve.get('batch_size')}, solver status {solve.get('status')}.", "", "Chosen blocks:", ""]
    lines += [f"- layer {i}: {name}" for i, name in enumerate(solve.get("chosen", []))]
    lines += ["", report.to_markdown().split("\n", 2)[2]]  # the report's table, without its title
    lines += ["", "| stage | status | seconds |", "|---|---|---:|"]
    for name, st in status.items():
        lines.append(f"| {name} | {st.state} | {'' if st.seconds is None else f'{st.seconds:.1f}'} |")
    return "\n".join(lines) + "\n"
