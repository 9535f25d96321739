"""Sweep mode: solve for a range of targets of one constraint, giving the quality-vs-cost frontier.

    'throughput>=1000:8000'             `points` targets evenly spaced from 1000 to 8000 tokens/s
    'stats.memory_mib<=40000,60000'     the listed targets
    'stats.memory_mib<=50%:100%'        fractions of the parent (both ends relative, or both absolute)

Each target adds one constraint to the config's own constraints; every target is solved over all batch sizes
(as `search` does) and gives one row: the target, feasibility, objective, batch size and the headline costs.
"""

from __future__ import annotations

import csv
import json
import math
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..library.record import Library
from ..ui import progress
from .config import SearchConfig
from .constraints import ConstraintError, Limit, check_key, parse_limit
from .run import InfeasibleError, problems_for, search


@dataclass(frozen=True)
class SweepSpec:
    key: str
    op: str
    limits: list[Limit]

    def constraint(self, limit: Limit) -> str:
        return f"{self.key}{self.op}{limit}"

    @property
    def label(self) -> str:
        unit = " (x parent)" if self.limits[0].of_parent else " (tokens/s)" if self.key == "throughput" else ""
        return f"{self.key} {self.op} target{unit}"


def parse_sweep(text: str, points: int = 8) -> SweepSpec:
    t = re.sub(r"\s+", "", text)
    m = re.fullmatch(r"(.+?)(<=|>=)(.+)", t)
    if not m:
        raise ConstraintError(f"sweep {text!r}: expected 'KEY<=START:STOP' or 'KEY>=V1,V2,...'")
    key, op, rhs = m.groups()
    check_key(key, f"sweep {text!r}: key")
    where = f"sweep {text!r}"
    if ":" in rhs:
        if points < 2:
            raise ConstraintError(f"{where}: a range needs at least 2 points, got {points}")
        start, stop = (parse_limit(p, where) for p in rhs.split(":", 1))
        if start.of_parent != stop.of_parent:
            raise ConstraintError(f"{where}: both ends must be absolute, or both relative to the parent")
        limits = [Limit(float(v), start.of_parent) for v in np.linspace(start.value, stop.value, points)]
    else:
        limits = [parse_limit(p, where) for p in rhs.split(",")]
    if key == "throughput" and any(limit.value <= 0 for limit in limits):
        raise ConstraintError(f"{where}: throughput targets must be positive")
    return SweepSpec(key, op, limits)


@dataclass
class Frontier:
    spec: SweepSpec
    rows: list[dict[str, Any]]
    """One per target: target, constraint, feasible, objective, batch_size, achieved, costs..., note."""
    objective_key: str

    def columns(self) -> dict[str, list]:
        """Column-major table (what `mlflow.log_table` takes)."""
        keys = list(dict.fromkeys(k for row in self.rows for k in row))
        return {k: [row.get(k) for row in self.rows] for k in keys}

    def figure(self):
        from matplotlib.figure import Figure  # no pyplot: no backend switch, nothing left open

        fig = Figure(figsize=(7, 4.5))
        ax = fig.subplots()
        ok = [r for r in self.rows if r["feasible"]]
        x = [r.get("target_x", r["target"]) for r in self.rows]  # the axis label's units (rows of old sweeps: absolute)
        if ok:
            ax.plot([xi for xi, r in zip(x, self.rows) if r["feasible"]], [r["objective"] for r in ok], "o-",
                    label="optimal architecture")
        for xi, r in zip(x, self.rows):
            if not r["feasible"] and xi is not None:
                ax.axvline(xi, color="tab:red", ls=":", lw=1)
        if any(not r["feasible"] for r in self.rows):
            ax.plot([], [], color="tab:red", ls=":", label="infeasible target")
        ax.set_xlabel(self.spec.label)
        ax.set_ylabel(f"{self.objective_key} (sum over layers)")
        ax.set_title("Quality vs cost frontier")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        return fig

    def save(self, folder: str | Path) -> list[Path]:
        """frontier.csv, frontier.json and frontier.png in `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        table = self.columns()
        with open(folder / "frontier.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(table)
            writer.writerows(zip(*table.values()))
        (folder / "frontier.json").write_text(json.dumps(self.rows, indent=1, default=str) + "\n")
        self.figure().savefig(folder / "frontier.png", dpi=120)
        return [folder / "frontier.csv", folder / "frontier.json", folder / "frontier.png"]


def sweep(library: Library, config: SearchConfig, spec: SweepSpec, show_progress: bool = True) -> Frontier:
    """One search per target of `spec`, added to `config`'s constraints (one solution each)."""
    base = config.model_dump()
    configs = [
        SearchConfig(**{**base, "constraints": [*config.constraints, spec.constraint(limit)], "num_solutions": 1})
        for limit in spec.limits
    ]
    problems = [problems_for(library, c)[0] for c in configs]  # validates every point before the first solve
    side = 0 if spec.op == ">=" else 1
    rows = []
    with progress("targets") if show_progress else nullcontext() as bar:
        task = bar.add_task("frontier", total=len(configs)) if bar else None
        for limit, cfg, problem in zip(spec.limits, configs, problems):
            text = spec.constraint(limit)
            # target: the absolute limit the MIP saw; target_x: the same in the sweep's own units (x parent)
            row: dict[str, Any] = {"constraint": text, "target": problem.rows[-1].limits[side],
                                   "target_x": limit.value}
            try:
                best = search(library, cfg).best
            except InfeasibleError as e:
                row.update(feasible=False, objective=None, batch_size=None, status="infeasible", mip_gap=None,
                           layers_changed=None, achieved=None, note=str(e))
            else:
                row.update(feasible=True, objective=best.objective, batch_size=best.batch_size, status=best.status,
                           mip_gap=best.mip_gap, layers_changed=best.layers_changed, achieved=best.costs[text],
                           target=best.limits[text][side], note=None)
                row.update({k: v for k, v in best.costs.items() if k.startswith("stats.")})
            rows.append({k: _finite(v) for k, v in row.items()})
            if bar:
                bar.advance(task)
    return Frontier(spec, rows, config.objective)


def _finite(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value
