"""The headline tables: one per target, one row per method, every figure read from that child's evaluation
report (measured speed, quality against the parent), beside what the cost model predicted."""

from __future__ import annotations

import math
import os
import platform
import statistics
from dataclasses import dataclass, field
from typing import Any

from ..evaluate.report import EvalReport


@dataclass
class MethodResult:
    target: float
    method: str
    """One of `baselines.config.METHODS` (puzzle, hybrid, uniform, depth, greedy, noop, random)."""
    label: str
    """The row's name, e.g. 'random (draw 1)'."""
    architecture: str = ""
    predicted_speedup: float | None = None
    """The cost model's decode-throughput speed-up (what the method was held to)."""
    report: EvalReport | None = None
    note: str | None = None
    """Why there is no evaluation (e.g. the method cannot meet the target)."""
    seconds: float = 0.0
    """Wall time of this row's work in this run (0 when everything was reused)."""
    averaged: dict[str, float] | None = None
    """A summary row's figures, averaged over several draws of one method (it has no report of its own)."""

    @property
    def evaluated(self) -> bool:
        return self.report is not None or self.averaged is not None

    def figures(self) -> dict[str, float]:
        """Flat figures of the evaluation: speed-ups, quality, retentions, the parent's own figures."""
        if self.averaged is not None:
            return dict(self.averaged)
        if self.report is None:
            return {}
        out: dict[str, float] = {}
        for row in self.report.rows:
            name = row.metric
            if name.startswith("decode_tokens_per_s@"):
                out.update(decode_speedup=row.ratio, parent_decode_tok_s=row.parent, decode_tok_s=row.child)
            elif name.startswith("prefill_ms@"):
                out.update(prefill_speedup=row.ratio, parent_prefill_ms=row.parent, prefill_ms=row.child)
            elif name == "num_params":
                out["params_fraction"] = row.ratio
            elif row.section == "quality":
                out[name] = row.child
                out[f"parent_{name}"] = row.parent
                out[f"{name}_retention"] = row.ratio
        return {k: float(v) for k, v in out.items() if v is not None}


PUZZLE_METHODS = ("puzzle", "hybrid")
"""The methods the headline is about; every other method is a baseline."""


def accuracy_keys(results: list[MethodResult]) -> list[str]:
    """The in-context accuracy figures of the evaluations: synthetic episodes (`episode_accuracy@4`) and real
    tasks (`icl:word_category@8`), by task, then by demonstrations."""
    keys = {k for r in results for k in r.figures()
            if (k.startswith("episode_accuracy@") or k.startswith("icl:")) and k.split("@")[1].isdigit()}
    return sorted(keys, key=lambda k: (k.split("@")[0], int(k.split("@")[1])))


def accuracy_label(key: str) -> str:
    """Column name of an accuracy key: 'episode acc @4', 'word_category @8'."""
    task, shots = key.split("@")
    return f"{'episode acc' if task == 'episode_accuracy' else task.removeprefix('icl:')} @{shots}"


def mean_accuracy_retention(figures: dict[str, float], keys: list[str]) -> float | None:
    """Mean child / parent in-context accuracy over `keys` (where the parent scores above 0)."""
    values = [figures[f"{k}_retention"] for k in keys if math.isfinite(figures.get(f"{k}_retention", math.nan))]
    return statistics.fmean(values) if values else None


def prediction_error(result: MethodResult) -> float | None:
    """Predicted / measured decode speed-up - 1: how far the cost model every method was held to was off."""
    measured = result.figures().get("decode_speedup")
    if not measured or result.predicted_speedup is None:
        return None
    return result.predicted_speedup / measured - 1


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"


def _with_retention(f: dict[str, float], key: str) -> str:
    if key not in f:
        return "n/a"
    return f"{_fmt(f[key])} ({_fmt(100 * f.get(f'{key}_retention', math.nan))}%)"


def mean_result(results: list[MethodResult]) -> MethodResult | None:
    """A synthetic 'mean' row over several evaluated draws of one method (None for fewer than two)."""
    done = [r for r in results if r.report is not None]
    if len(done) < 2:
        return None
    keys = set.intersection(*(set(r.figures()) for r in done))
    return MethodResult(done[0].target, done[0].method, f"{done[0].method} (mean of {len(done)})", "-",
                        statistics.fmean(r.predicted_speedup for r in done),
                        averaged={k: statistics.fmean(r.figures()[k] for r in done) for k in keys})


def target_rows(results: list[MethodResult]) -> tuple[list[str], list[list[str]]]:
    """(column names, cells per row) of one target's table: the parent first, a mean row after multi-draw methods."""
    episodes = accuracy_keys(results)
    head = ["method", "predicted speed-up", "measured decode speed-up", "cost-model error",
            "measured prefill speed-up", "params", "KL from parent", "top-1 acc (retention)", "LM-loss retention"]
    head += [f"{accuracy_label(k)} (retention)" for k in episodes]
    head += ["mean in-context retention"] if episodes else []
    head += ["architecture"]
    rows = []
    parent = next((r.figures() for r in results if r.report is not None), None)
    if parent:
        cells = ["parent", "1", "1", "", "1", "100%", "0", _fmt(parent.get("parent_top1_accuracy")), "100%"]
        cells += [_fmt(parent.get(f"parent_{k}")) for k in episodes]
        cells += ["100%"] if episodes else []
        cells += [f"{_fmt(parent.get('parent_decode_tok_s'))} tok/s decode, "
                  f"{_fmt(parent.get('parent_prefill_ms'))} ms prefill"]
        rows.append(cells)
    ordered: list[MethodResult] = []
    for method in dict.fromkeys(r.method for r in results):
        group = [r for r in results if r.method == method]
        ordered += group
        mean = mean_result(group)
        if mean is not None:
            ordered.append(mean)
    for r in ordered:
        f = r.figures()
        if not r.evaluated:
            rows.append([r.label, _fmt(r.predicted_speedup)] + [""] * (len(head) - 3) + [r.note or "not evaluated"])
            continue
        error = prediction_error(r) if r.averaged is None else None
        cells = [
            r.label,
            _fmt(r.predicted_speedup),
            _fmt(f.get("decode_speedup")),
            "" if error is None else f"{100 * error:+.1f}%",
            _fmt(f.get("prefill_speedup")),
            f"{_fmt(100 * f.get('params_fraction', math.nan))}%",
            _fmt(f.get("kl_from_parent")),
            _with_retention(f, "top1_accuracy"),
            f"{_fmt(100 * f.get('lm_loss_retention', math.nan))}%",
        ]
        cells += [_with_retention(f, k) for k in episodes]
        if episodes:
            mean = mean_accuracy_retention(f, episodes)
            cells += ["n/a" if mean is None else f"{_fmt(100 * mean)}%"]
        cells += [r.architecture]
        rows.append(cells)
    return head, rows


def target_table(target: float, results: list[MethodResult]) -> list[str]:
    """The Markdown lines of one target's table and its one-line reading."""
    head, rows = target_rows(results)
    lines = [f"### Target {target:g}x decode throughput", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return lines + ["", verdict(results)]


def verdict(results: list[MethodResult]) -> str:
    """One sentence: does Puzzle's best child (MIP, or hybrid BLD) keep more than every baseline (lower KL, higher
    top-1, higher mean in-context retention)?"""
    puzzle = [r for r in results if r.method in PUZZLE_METHODS and r.report is not None]
    others = [r for r in results if r.method not in PUZZLE_METHODS and r.report is not None]
    if not puzzle:
        return "Puzzle: no child at this target."
    if not others:
        return "No baseline child at this target to compare with."
    keys = accuracy_keys(results)

    def icl(r: MethodResult) -> float:
        value = mean_accuracy_retention(r.figures(), keys)
        return -math.inf if value is None else value

    checks = [("KL", lambda r: -r.figures().get("kl_from_parent", math.inf), "the lowest KL from the parent"),
              ("top-1", lambda r: r.figures().get("top1_accuracy", -math.inf), "the highest top-1 accuracy")]
    if keys:
        checks.append(("in-context retention", icl, "the highest mean in-context retention"))
    parts = []
    for name, score, claim in checks:
        best = max(score(r) for r in puzzle)
        beaten = [r.label for r in others if score(r) >= best]
        parts.append(f"Puzzle has {claim}" if not beaten else f"{name} as good as or better than Puzzle's: "
                     f"{', '.join(beaten)}")
    return "Reading: " + "; ".join(parts) + "."


def machine_info() -> dict[str, Any]:
    """CPU model and cores, load average, and the versions that matter for the figures."""
    import importlib.metadata as md

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("torch", "transformers", "ray", "mlflow", "cvxpy", "highspy", "deepspeed"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "absent"
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": versions}


@dataclass
class HeadlineReport:
    title: str
    results: list[MethodResult]
    machine: dict[str, Any]
    setup: list[str] = field(default_factory=list)
    """Lines describing the shared set-up (parent, scenario, budgets, cost model)."""
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        m = self.machine
        lines = [f"# {self.title}", ""]
        lines += [f"- {line}" for line in self.setup]
        lines += ["", "## Results", ""]
        for target in sorted({r.target for r in self.results}):
            lines += target_table(target, [r for r in self.results if r.target == target]) + [""]
        lines += [
            "Speed-ups are measured end to end on this machine (prefill of the whole batch, then single-token decode "
            "steps with the model's own cache), each child against the parent in the same evaluation; \"predicted\" is "
            "the sum of measured per-block times that every method was held to (the MIP's constraint). "
            "Retention: child / parent (LM loss: exp(parent - child)). Episode accuracy: held-out in-context "
            "classification episodes with that many demonstrations.",
            "",
            "## Machine",
            "",
            f"- CPU: {m['cpu']} ({m['cores']} cores)",
            f"- load average (1 min) at start / end: {m.get('load_start', 'n/a')} / {m.get('load_end', 'n/a')}",
            f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()),
        ]
        if m.get("wall_s") is not None:
            lines.append(f"- wall time of this run: {m['wall_s'] / 60:.1f} min")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def mlflow_metrics(result: MethodResult) -> dict[str, float]:
    """The row's figures as MLflow metrics (finite values only)."""
    out = {k: v for k, v in result.figures().items() if math.isfinite(v)}
    if result.predicted_speedup is not None and math.isfinite(result.predicted_speedup):
        out["predicted_speedup"] = result.predicted_speedup
    return {k.replace("@", "_at_"): v for k, v in out.items()}
