"""The Puzzle MIP in cvxpy, solved by HiGHS: a grouped knapsack with one binary per (layer, variant).

    x in {0, 1}^N                       one column per (layer, variant)
    A x = 1                             A: (L, N) sparse, exactly one variant per layer
    lower - c0 <= V x <= upper - c0     V: (K, N) the constrained per-variant values, c0 the non-block part
    S x <= L - d                        S: (P, N) sparse, ones at an earlier solution's columns (diversity d)
    minimise / maximise  q . x          q: (N,) the objective's per-variant values

Everything is one variable vector and a few matrices, so building the model costs milliseconds even for
126 layers x 54 variants. Constraint rows are scaled by their bound (or their largest value) so that HiGHS's
absolute feasibility tolerance (1e-7) is a relative one, whatever the units (MiB, ms, parameters).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .dominance import allowed_columns, undominated
from .highs import quiet_highs_banner
from .problem import Row, SearchProblem


@dataclass
class MipResult:
    status: str
    """'optimal', 'time_limit' (a solution, not proven optimal), 'infeasible', or HiGHS's/cvxpy's status."""
    columns: np.ndarray | None
    """(L,) chosen column per layer, when a solution exists."""
    objective: float | None
    mip_gap: float | None
    """Relative gap between the solution and HiGHS's bound (0 when proven optimal)."""
    solve_time_s: float
    """HiGHS's own run time."""
    build_time_s: float
    """Model building and cvxpy's canonicalisation (wall time minus solve time)."""

    @property
    def feasible(self) -> bool:
        return self.columns is not None


@dataclass
class MipModel:
    """The MIP exactly as HiGHS gets it: the kept columns, the scaled constraint rows, the diversity rows.
    `benchmarks/mip_scaling.py` hands the same model to another solver."""

    keep: np.ndarray
    """(n,) the problem's columns that are variables here (sorted); the others are pruned."""
    layer_of: np.ndarray
    """(n,) layer of each variable, non-decreasing."""
    num_layers: int
    objective: np.ndarray
    """(n,) q."""
    maximize: bool
    feasibility_only: bool
    """No objective: any feasible point will do."""
    upper: tuple[np.ndarray, np.ndarray] | None
    """(V, b): V x <= b, V (K, n), each row scaled by max(|b|, its largest |value|)."""
    lower: tuple[np.ndarray, np.ndarray] | None
    """(V, b): V x >= b, scaled alike."""
    diversity: tuple[sp.csr_matrix, int] | None
    """(S, L - d): S x <= L - d, S (P, n) with ones at each earlier solution's columns."""

    @property
    def assign(self) -> sp.csr_matrix:
        """(L, n): A x = 1, exactly one variant per layer."""
        n = len(self.keep)
        return sp.csr_matrix((np.ones(n), (self.layer_of, np.arange(n))), shape=(self.num_layers, n))


def build_model(
    problem: SearchProblem,
    rows: list[Row] | None = None,
    exclude: list[np.ndarray] = (),
    min_diversity: int = 1,
    feasibility_only: bool = False,
) -> MipModel:
    """The model `solve_mip` solves (see there for the arguments)."""
    rows = problem.rows if rows is None else rows
    L = problem.num_layers
    # Dominated columns cannot be needed by a single solution (see dominance.py); diverse solutions keep every
    # allowed one.
    keep = allowed_columns(problem) if len(exclude) else undominated(problem, rows, not feasibility_only)
    sides = {}
    for name, side in (("upper", [(r, r.upper) for r in rows if r.upper is not None]),
                       ("lower", [(r, r.lower) for r in rows if r.lower is not None])):
        if side:
            V = np.stack([problem.values[r.column][keep] for r, _ in side])  # (K, n)
            b = np.array([bound - problem.constant[r.column] for r, bound in side])  # (K,)
            scale = np.maximum(np.maximum(np.abs(b), np.abs(V).max(axis=1)), 1e-12)
            sides[name] = (V / scale[:, None], b / scale)

    diversity = None
    if len(exclude):
        # A solution shares sum(x[its columns]) layers with the new one; at most L - d may be shared.
        position = np.full(problem.num_columns, -1)
        position[keep] = np.arange(len(keep))
        cols = position[np.concatenate(exclude)]  # every allowed column is kept here, and solutions use no other
        which = np.repeat(np.arange(len(exclude)), L)
        S = sp.csr_matrix((np.ones(len(cols)), (which, cols)), shape=(len(exclude), len(keep)))
        diversity = (S, L - min_diversity)
    return MipModel(keep, problem.layer_of[keep], L, problem.objective[keep], problem.maximize, feasibility_only,
                    sides.get("upper"), sides.get("lower"), diversity)


def solve_mip(
    problem: SearchProblem,
    rows: list[Row] | None = None,
    exclude: list[np.ndarray] = (),
    min_diversity: int = 1,
    feasibility_only: bool = False,
    mip_rel_gap: float = 1e-6,
    time_limit_s: float = 60.0,
    highs_options: dict[str, Any] | None = None,
) -> MipResult:
    """Solve with `rows` (default: all the problem's rows), differing from every `exclude` solution (L,) columns
    in at least `min_diversity` layers. `feasibility_only` drops the objective (used to explain infeasibility).
    Without `exclude`, columns dominated within their layer are left out of the model (the optimum is the
    same); the returned columns are the problem's own."""
    import cvxpy as cp

    start = time.perf_counter()
    model = build_model(problem, rows, exclude, min_diversity, feasibility_only)
    L, layer_of, q = model.num_layers, model.layer_of, model.objective
    x = cp.Variable(len(model.keep), boolean=True)
    constraints = [model.assign @ x == 1]
    if model.upper is not None:
        constraints.append(model.upper[0] @ x <= model.upper[1])
    if model.lower is not None:
        constraints.append(model.lower[0] @ x >= model.lower[1])
    if model.diversity is not None:
        constraints.append(model.diversity[0] @ x <= model.diversity[1])
    if feasibility_only:
        objective = cp.Minimize(0)
    else:
        objective = cp.Maximize(q @ x) if model.maximize else cp.Minimize(q @ x)
    cp_problem = cp.Problem(objective, constraints)
    quiet_highs_banner()
    with warnings.catch_warnings():
        # a time-limited solve is reported through `status` and `mip_gap`; cvxpy's generic warning adds nothing
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        options = dict(mip_rel_gap=mip_rel_gap, time_limit=time_limit_s, output_flag=False, **(highs_options or {}))
        try:
            cp_problem.solve(solver=cp.HIGHS, **options)
        except cp.error.SolverError:
            if "threads" not in options:
                raise
            # HiGHS keeps one thread pool per process, sized by the first solve, and refuses a solve that asks
            # for another size: take the pool there is (the solve is the same, only its parallelism differs)
            del options["threads"]
            cp_problem.solve(solver=cp.HIGHS, **options)
    wall = time.perf_counter() - start
    stats = cp_problem.solver_stats
    solve_time = float(stats.solve_time or 0.0)
    info = stats.extra_stats

    status = {"optimal": "optimal", "user_limit": "time_limit"}.get(cp_problem.status, cp_problem.status)
    if cp_problem.status not in ("optimal", "optimal_inaccurate", "user_limit") or x.value is None:
        return MipResult(status, None, None, None, solve_time, wall - solve_time)
    columns = _columns(x.value, layer_of, L)
    if columns is None:  # stopped by the time limit before any integer solution: HiGHS hands back its LP point
        if status == "optimal":
            raise RuntimeError("HiGHS returned a fractional assignment as optimal (please report this)")
        return MipResult(status, None, None, None, solve_time, wall - solve_time)
    objective_value = float(q[columns].sum())
    gap = 0.0 if feasibility_only else _gap(info, objective_value)
    return MipResult(status, model.keep[columns], objective_value, gap, solve_time, wall - solve_time)


def _columns(x: np.ndarray, layer_of: np.ndarray, num_layers: int) -> np.ndarray | None:
    """(L,) the position in `x` of each layer's set binary; None unless the point is integral (to 1e-4).
    `layer_of` (n,): the layer of each position, non-decreasing."""
    offsets = np.searchsorted(layer_of, np.arange(num_layers + 1))
    out = np.array([offsets[i] + int(np.argmax(x[offsets[i]:offsets[i + 1]])) for i in range(num_layers)])
    if np.abs(x[out] - 1).max() > 1e-4 or np.abs(x).sum() - num_layers > 1e-4 * num_layers:
        return None
    return out


def _gap(info, objective: float) -> float | None:
    """HiGHS's relative gap |primal - dual bound| / |primal|, recomputed when HiGHS reports none."""
    gap = getattr(info, "mip_gap", None)
    bound = getattr(info, "mip_dual_bound", None)
    if gap is not None and np.isfinite(gap) and gap >= 0:
        return float(gap)
    if bound is None or not np.isfinite(bound):
        return None
    return abs(objective - bound) / max(abs(objective), 1e-12)
