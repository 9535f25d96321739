"""The search stage: validate, solve once per batch size (Ray tasks in parallel), return the best feasible.

    problems_for(library, config) -> one validated SearchProblem per batch size (raises on bad input, solves nothing)
    solve_problem(problem...) -> the diverse solutions at one batch size, each verified, or why it is infeasible
    search(library, config)   -> SearchResult: the best batch size's solutions and every batch size's outcome
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from ..library.record import Library, stats_for_batch
from ..ui import progress
from .config import SearchConfig
from .explain import Infeasibility, explain_infeasible
from .inputs import available_batch_sizes
from .mip import MipResult, solve_mip
from .problem import SearchProblem, build_problem
from .solution import Solution
from .verify import verify_solution

HEADLINE_STATS = ("memory_mib", "runtime_ms", "prefill_ms", "num_params")
"""Totals reported with every solution when the library has them, whatever the constraints."""


@dataclass
class BatchOutcome:
    batch_size: int | None
    solutions: list[Solution]
    infeasibility: Infeasibility | None = None
    note: str | None = None
    """E.g. fewer diverse solutions than asked, or a time limit without any solution."""

    @property
    def feasible(self) -> bool:
        return bool(self.solutions)

    def to_json(self) -> dict[str, Any]:
        best = self.solutions[0] if self.solutions else None
        return {
            "batch_size": self.batch_size,
            "feasible": self.feasible,
            "objective": best.objective if best else None,
            "status": best.status if best else "infeasible",
            "num_solutions": len(self.solutions),
            "note": self.note,
            "infeasibility": self.infeasibility.to_json() if self.infeasibility else None,
        }


@dataclass
class SearchResult:
    solutions: list[Solution]
    """The best batch size's solutions, best first (diverse ones after)."""
    batch_size: int | None
    per_batch: list[BatchOutcome] = field(default_factory=list)
    note: str | None = None

    @property
    def best(self) -> Solution:
        return self.solutions[0]

    def to_json(self, hidden_size: int | None = None) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "solutions": [s.to_json(hidden_size) for s in self.solutions],
            "per_batch": [o.to_json() for o in self.per_batch],
            "note": self.note,
        }


class InfeasibleError(ValueError):
    """No batch size gave an architecture (infeasible, or stopped by the time limit before any solution);
    `outcomes` carry each batch size's explanation."""

    def __init__(self, outcomes: list[BatchOutcome]):
        self.outcomes = outcomes
        lines = [o.infeasibility.message if o.infeasibility else f"batch size {o.batch_size}: {o.note}"
                 for o in outcomes]
        super().__init__("\n".join(lines))


def batch_sizes_to_try(library: Library, config: SearchConfig) -> tuple[list[int | None], list[int]]:
    """(batch sizes to solve, batch sizes skipped because the measure stage found they do not fit the device)."""
    known = available_batch_sizes(library)
    batch_sizes: list[int | None] = list(config.batch_sizes or known or [None])
    if config.batch_sizes and known is not None:
        missing = [b for b in config.batch_sizes if b not in known]
        if missing:
            raise ValueError(f"batch_sizes: the library has no stats at batch size {missing[0]} (measured: {known})")
    unfit = [b for b in batch_sizes if b is not None and not _fits(library, b)]
    return [b for b in batch_sizes if b not in unfit], unfit


def problems_for(library: Library, config: SearchConfig) -> list[SearchProblem]:
    """One validated problem per batch size that fits the device. All input errors surface here, before any solve."""
    batch_sizes, _ = batch_sizes_to_try(library, config)
    return [build_problem(library, config, b) for b in batch_sizes]


def solve_problem(
    problem: SearchProblem, library: Library, config: SearchConfig, show_progress: bool = False
) -> BatchOutcome:
    """Up to `config.num_solutions` solutions at one batch size, each differing from the earlier ones in
    `min_diversity` layers and verified against the library; or the explanation of infeasibility."""
    opts = dict(mip_rel_gap=config.mip_rel_gap, time_limit_s=config.time_limit_s, highs_options=config.highs_options)
    first = solve_mip(problem, **opts)
    if not first.feasible:
        if first.status == "infeasible":
            why = explain_infeasible(problem, config.time_limit_s, config.highs_options)
            return BatchOutcome(problem.batch_size, [], why)
        return BatchOutcome(problem.batch_size, [], note=f"no solution found (HiGHS status: {first.status})")
    solutions = [make_solution(problem, library, first, rank=0)]
    verify_solution(solutions[0], library, config)
    solutions[0].verified = True
    need = config.diversity_layers(problem.num_layers)
    note = None
    with progress("solutions", transient=True) if show_progress and config.num_solutions > 1 else nullcontext() as bar:
        task = bar.add_task("diverse solutions", total=config.num_solutions, completed=1) if bar else None
        for rank in range(1, config.num_solutions):
            exclude = [problem.columns_of(s.chosen) for s in solutions]
            result = solve_mip(problem, exclude=exclude, min_diversity=need, **opts)
            if not result.feasible:
                note = f"only {rank} solution(s) differ pairwise in >= {need} layers (asked for {config.num_solutions})"
                break
            solution = make_solution(problem, library, result, rank=rank)
            verify_solution(solution, library, config, earlier=solutions)
            solution.verified = True
            solutions.append(solution)
            if bar:
                bar.advance(task)
    return BatchOutcome(problem.batch_size, solutions, note=note)


def search(library: Library, config: SearchConfig, show_progress: bool = False) -> SearchResult:
    """Solve every batch size (as Ray tasks when there are several) and return the best feasible one's solutions.
    Raises `InfeasibleError` (with explanations) when no batch size admits an architecture."""
    batch_sizes, unfit = batch_sizes_to_try(library, config)
    problems = [build_problem(library, config, b) for b in batch_sizes]  # every input error surfaces here
    skipped = [BatchOutcome(b, [], note="does not fit the device (the measurements say fits=false)") for b in unfit]
    use_ray = config.use_ray if config.use_ray is not None else len(problems) > 1
    if not problems:
        outcomes = []
    elif use_ray:
        import ray

        from ..cluster import connect

        connect()
        library_ref = ray.put(library)
        solver = _remote_solver()
        outcomes = ray.get([solver.remote(p, library_ref, config) for p in problems])
    else:
        outcomes = [solve_problem(p, library, config, show_progress) for p in problems]
    outcomes = sorted(outcomes + skipped, key=lambda o: o.batch_size or 0)
    feasible = [o for o in outcomes if o.feasible]
    if not feasible:
        raise InfeasibleError(outcomes)
    sign = -1.0 if config.maximize else 1.0
    # best objective first; on a tie the larger batch size (more throughput for the same quality)
    best = min(feasible, key=lambda o: (sign * o.solutions[0].objective, -(o.batch_size or 0)))
    return SearchResult(best.solutions, best.batch_size, outcomes, best.note)


def make_solution(problem: SearchProblem, library: Library, result: MipResult, rank: int) -> Solution:
    cols = result.columns
    chosen = [problem.names[i][c - problem.offsets[i]] for i, c in enumerate(cols)]
    costs = {c.text: problem.cost(c, cols) for c in problem.constraints}
    costs.update(_headline_totals(library, chosen, problem.batch_size))
    changed = None
    if problem.parent_columns is not None:
        changed = int((cols != np.asarray(problem.parent_columns)).sum())
    return Solution(
        chosen=chosen,
        blocks=[library.layers[i][n].block_config for i, n in enumerate(chosen)],
        objective=result.objective,
        objective_key=problem.objective_key,
        maximize=problem.maximize,
        costs=costs,
        limits={r.name: list(r.limits) for r in problem.rows},
        status=result.status,
        mip_gap=result.mip_gap,
        solve_time_s=result.solve_time_s,
        build_time_s=result.build_time_s,
        batch_size=problem.batch_size,
        rank=rank,
        layers_changed=changed,
    )


def _fits(library: Library, batch_size: int) -> bool:
    """False when the measure stage marked any variant (or the non-block part) as not fitting at this batch."""
    entries = [v.stats for layer in library.layers for v in layer.values()] + [library.meta.non_block or {}]
    return all(stats_for_batch(s, batch_size).get("fits", True) is not False for s in entries)


def _headline_totals(library: Library, chosen: list[str], batch_size: int | None) -> dict[str, float]:
    stats = [library.layers[i][n].stats_for_batch(batch_size) for i, n in enumerate(chosen)]
    non_block = stats_for_batch(library.meta.non_block or {}, batch_size)
    out = {}
    for stat in HEADLINE_STATS:
        if all(isinstance(s.get(stat), (int, float)) for s in stats):
            out[f"stats.{stat}"] = float(sum(s[stat] for s in stats) + non_block.get(stat, 0.0))
    return out


@cache
def _remote_solver():
    import ray

    return ray.remote(num_cpus=1)(solve_problem)
