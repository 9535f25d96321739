"""Why no architecture meets the constraints: what each constraint can reach alone, and which ones conflict.

For each constraint, the range of figures that architectures reach (per-layer minima and maxima, summed) and
whether some architecture meets it on its own (a feasibility MIP: exact also for ranges). Among the constraints
that can be met alone, every pair is checked for joint feasibility; if no pair conflicts, a deletion filter
finds a minimal set that cannot hold together (an irreducible infeasible subset).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .constraints import THROUGHPUT
from .mip import solve_mip
from .problem import Row, SearchProblem


@dataclass
class ConstraintReach:
    constraint: str
    lower: float | None
    """The resolved lower limit, in the constraint's units (None: none)."""
    upper: float | None
    reachable: list[float]
    """[smallest, largest] figure any architecture reaches for this constraint alone."""
    best_alone: float
    """The reachable figure nearest to the limits (the smallest for an upper limit, the largest for a lower one)."""
    feasible_alone: bool


@dataclass
class Infeasibility:
    batch_size: int | None
    constraints: list[ConstraintReach]
    conflicts: list[list[str]]
    """Groups of constraints, each reachable alone, that no architecture meets together."""
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def explain_infeasible(
    problem: SearchProblem, time_limit_s: float = 60.0, highs_options: dict[str, Any] | None = None
) -> Infeasibility:
    opts = dict(feasibility_only=True, time_limit_s=time_limit_s, highs_options=highs_options)
    reaches = [_reach(problem, r, solve_mip(problem, [r], **opts).feasible) for r in problem.rows]
    feasible = [r for r, reach in zip(problem.rows, reaches) if reach.feasible_alone]

    def jointly_feasible(rows: list[Row]) -> bool:
        return solve_mip(problem, rows, **opts).feasible

    conflicts = [[a.name, b.name] for a, b in itertools.combinations(feasible, 2) if not jointly_feasible([a, b])]
    if not conflicts and len(feasible) == len(problem.rows) and len(feasible) > 2:
        core = list(feasible)  # deletion filter: drop each constraint whose removal keeps the rest infeasible
        for r in list(core):
            rest = [c for c in core if c is not r]
            if not jointly_feasible(rest):
                core = rest
        conflicts = [[r.name for r in core]]
    return Infeasibility(problem.batch_size, reaches, conflicts, _message(problem, reaches, conflicts))


def _reach(problem: SearchProblem, row: Row, feasible: bool) -> ConstraintReach:
    values, offsets = problem.values[row.column], problem.offsets
    const = problem.constant[row.column]
    low = float(np.minimum.reduceat(values, offsets[:-1]).sum() + const)
    high = float(np.maximum.reduceat(values, offsets[:-1]).sum() + const)
    lower, upper = row.limits
    constraint = next(c for c in problem.constraints if c.text == row.name)
    if constraint.key == THROUGHPUT:  # figures in tokens/s: the reciprocal of the runtime
        tokens_ms = problem.tokens_per_batch * 1000.0
        low, high = (tokens_ms / high if high > 0 else math.inf), (tokens_ms / low if low > 0 else math.inf)
    if upper is not None and (lower is None or low > upper):
        best = low
    elif lower is not None and high < lower:
        best = high
    else:
        best = high if upper is None else low
    return ConstraintReach(row.name, lower, upper, [low, high], best, feasible)


def _message(problem: SearchProblem, reaches: list[ConstraintReach], conflicts: list[list[str]]) -> str:
    where = f" at batch size {problem.batch_size}" if problem.batch_size is not None else ""
    parts = []
    for r in reaches:
        if not r.feasible_alone:
            parts.append(
                f"{r.constraint} cannot be met by any architecture on its own (the figures reachable lie in "
                f"[{r.reachable[0]:,.6g}, {r.reachable[1]:,.6g}]; best {r.best_alone:,.6g})"
            )
    for group in conflicts:
        both = "both" if len(group) == 2 else "all at once (no two of them conflict)"
        parts.append(f"{' and '.join(group)} conflict: each can be met alone, not {both}")
    if not parts:
        parts.append("the constraints are jointly infeasible (no smaller conflicting set was found)")
    return f"no architecture meets the constraints{where}: " + "; ".join(parts)
