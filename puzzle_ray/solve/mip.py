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

from .dominance import undominated
from .fixing import core_columns, lagrangian_bound, rounded_incumbent
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
    # Dominated columns cannot be needed (see dominance.py); in a diverse solve, only those that an unused column
    # dominates.
    taken = None
    if len(exclude):
        taken = np.zeros(problem.num_columns, dtype=bool)
        taken[np.concatenate(exclude)] = True
    keep = undominated(problem, rows, not feasibility_only, taken)
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
        cols = position[np.concatenate(exclude)]  # -1: pruned, so never chosen and never shared
        which = np.repeat(np.arange(len(exclude)), L)
        used = cols >= 0
        S = sp.csr_matrix((np.ones(used.sum()), (which[used], cols[used])), shape=(len(exclude), len(keep)))
        diversity = (S, L - min_diversity)
    return MipModel(keep, problem.layer_of[keep], L, problem.objective[keep], problem.maximize, feasibility_only,
                    sides.get("upper"), sides.get("lower"), diversity)


_STATUS = {"user_limit": "time_limit"}
"""cvxpy's status names that MipResult spells otherwise."""
CORE_WHEN_KEPT = 0.4
"""When fixing with the rounded LP point keeps more than this fraction of the columns, a small MIP looks for a
better incumbent first. On the published 70B library the rounding keeps 16-26 % in the single-solution
scenarios (a small MIP there cost more than it saved) and 47 % in the first diverse one (where it paid)."""
CORE_PER_LAYER = 2
"""Columns per layer (least reduced cost) of that small MIP: on the published scenarios it finds the optimum or
comes within 0.1 % of it, in a fifth of the full MIP's time."""


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
    The returned columns are the problem's own.

    The MIP HiGHS proves optimal leaves out what no optimum can use: columns dominated within their layer
    (dominance.py) and columns whose LP reduced cost exceeds the gap to an incumbent (fixing.py). The incumbent
    is the LP point rounded; when that leaves many columns, the optimum of a small MIP over each layer's cheapest
    reduced-cost columns, and when fixing then leaves nothing outside the small MIP, its optimum is the problem's."""
    start = time.perf_counter()
    model = build_model(problem, rows, exclude, min_diversity, feasibility_only)
    n = len(model.keep)
    cost = np.zeros(n) if feasibility_only else (-model.objective if model.maximize else model.objective)
    options = dict(mip_rel_gap=mip_rel_gap, output_flag=False, **(highs_options or {}))
    spent = 0.0  # HiGHS's own time over every solve

    def finish(status: str, columns: np.ndarray | None, gap: float | None) -> MipResult:
        wall = time.perf_counter() - start
        if columns is None:
            return MipResult(status, None, None, None, spent, wall - spent)
        return MipResult(status, model.keep[columns], float(model.objective[columns].sum()), gap, spent,
                         wall - spent)

    def run(active: np.ndarray, integer: bool) -> _Solved:
        nonlocal spent
        left = max(time_limit_s - (time.perf_counter() - start), 1e-3)
        solved = _solve(model, cost, active, integer, dict(options, time_limit=left))
        spent += solved.solve_time
        return solved

    everything = np.ones(n, dtype=bool)
    incumbent, active, lower = None, everything, -np.inf
    if not feasibility_only:
        lp = run(everything, integer=False)
        if lp.status not in ("optimal", "optimal_inaccurate"):  # an infeasible LP: so is the MIP
            return finish(_STATUS.get(lp.status, lp.status), None, None)
        bound = lagrangian_bound(model, cost, lp.duals)
        lower = bound.value
        incumbent = rounded_incumbent(model, cost, lp.x)
    if incumbent is not None:
        upper = float(cost[incumbent].sum())
        active, small = bound.keep(upper), None
        if active.mean() > CORE_WHEN_KEPT:
            # a weak incumbent: a small MIP over each layer's cheapest reduced-cost columns finds a better one
            core = core_columns(model, bound, CORE_PER_LAYER)
            core[incumbent] = True  # so the small MIP is feasible
            small = run(core, integer=True)
            found = _chosen(small, model, core)
            if found is not None and cost[found].sum() < upper:
                incumbent, upper = found, float(cost[found].sum())
                active = bound.keep(upper)
            if small.status == "optimal" and found is not None and not (active & ~core).any():
                # nothing outside the small MIP survived: its proven optimum is the problem's
                return finish("optimal", incumbent, _gap(small.info, upper, lower))
        if _relative(upper, lower) <= mip_rel_gap:  # within the gap of the LP bound: proven, no MIP to solve
            return finish("optimal", incumbent, _relative(upper, lower))
    mip = run(active, integer=True)
    status = _STATUS.get(mip.status, mip.status)
    columns = _chosen(mip, model, active)
    if columns is None and status == "optimal" and mip.x is not None:
        raise RuntimeError("HiGHS returned a fractional assignment as optimal (please report this)")
    if incumbent is not None and (columns is None or cost[columns].sum() > cost[incumbent].sum()):
        # HiGHS found nothing better: the incumbent is within HiGHS's gap, or the time limit came first
        columns = incumbent
        status = status if status == "optimal" else "time_limit"
    if columns is None:
        return finish(status, None, None)
    return finish(status, columns, 0.0 if feasibility_only else _gap(mip.info, float(cost[columns].sum()), lower))


def _relative(upper: float, lower: float) -> float:
    """The relative gap between a solution's cost and a lower bound on every solution's cost."""
    return max(upper - lower, 0.0) / max(abs(upper), 1e-12)


def _chosen(solved: "_Solved", model: MipModel, active: np.ndarray) -> np.ndarray | None:
    """(L,) model positions of the architecture a MIP solve over the `active` columns found, or None (no
    solution, or only a fractional LP point when the time limit came first)."""
    if solved.status not in ("optimal", "optimal_inaccurate", "user_limit") or solved.x is None:
        return None
    chosen = _columns(solved.x, model.layer_of[active], model.num_layers)
    return None if chosen is None else np.flatnonzero(active)[chosen]


@dataclass
class _Solved:
    status: str
    x: np.ndarray | None
    duals: np.ndarray | None
    """Multipliers of `fixing.inequality_rows` (LP only)."""
    solve_time: float
    info: Any


def _solve(model: MipModel, cost: np.ndarray, active: np.ndarray, integer: bool, options: dict) -> _Solved:
    """min cost . x over the `active` columns of `model` (the others fixed at 0) with cvxpy + HiGHS: binary x
    (`integer`) or its LP relaxation 0 <= x <= 1."""
    import cvxpy as cp

    cols = np.flatnonzero(active)
    n = len(cols)
    x = cp.Variable(n, boolean=True) if integer else cp.Variable(n)
    constraints = [model.assign[:, cols] @ x == 1]
    inequalities = []  # in fixing.inequality_rows' order
    if model.upper is not None:
        inequalities.append(model.upper[0][:, cols] @ x <= model.upper[1])
    if model.lower is not None:
        inequalities.append(model.lower[0][:, cols] @ x >= model.lower[1])
    if model.diversity is not None:
        inequalities.append(model.diversity[0][:, cols] @ x <= model.diversity[1])
    if not integer:
        constraints.append(x >= 0)  # x <= 1 follows from the assignment rows
    cp_problem = cp.Problem(cp.Minimize(cost[cols] @ x), constraints + inequalities)
    quiet_highs_banner()
    opts = dict(options) if integer else {k: v for k, v in options.items() if not k.startswith("mip_")}
    with warnings.catch_warnings():
        # a time-limited solve is reported through `status` and `mip_gap`; cvxpy's generic warning adds nothing
        warnings.filterwarnings("ignore", message="Solution may be inaccurate")
        try:
            cp_problem.solve(solver=cp.HIGHS, **opts)
        except cp.error.SolverError:
            if "threads" not in opts:
                raise
            # HiGHS keeps one thread pool per process, sized by the first solve, and refuses a solve that asks
            # for another size: take the pool there is (the solve is the same, only its parallelism differs)
            del opts["threads"]
            cp_problem.solve(solver=cp.HIGHS, **opts)
    stats = cp_problem.solver_stats
    duals = None
    if not integer and x.value is not None:
        duals = np.concatenate([np.atleast_1d(c.dual_value) for c in inequalities]) if inequalities else np.zeros(0)
    return _Solved(cp_problem.status, x.value, duals, float(stats.solve_time or 0.0), stats.extra_stats)


def _columns(x: np.ndarray, layer_of: np.ndarray, num_layers: int) -> np.ndarray | None:
    """(L,) the position in `x` of each layer's set binary; None unless the point is integral (to 1e-4).
    `layer_of` (n,): the layer of each position, non-decreasing."""
    offsets = np.searchsorted(layer_of, np.arange(num_layers + 1))
    out = np.array([offsets[i] + int(np.argmax(x[offsets[i]:offsets[i + 1]])) for i in range(num_layers)])
    if np.abs(x[out] - 1).max() > 1e-4 or np.abs(x).sum() - num_layers > 1e-4 * num_layers:
        return None
    return out


def _gap(info, cost: float, lower: float = -np.inf) -> float | None:
    """The relative gap of a solution costing `cost` (the minimised objective): HiGHS's own when it reports one,
    else from the best of HiGHS's dual bound and `lower`, the LP bound (None when neither is known)."""
    gap = getattr(info, "mip_gap", None)
    if gap is not None and np.isfinite(gap) and gap >= 0:
        return float(gap)
    bound = getattr(info, "mip_dual_bound", None)
    bound = max(bound if bound is not None and np.isfinite(bound) else -np.inf, lower)
    return _relative(cost, bound) if np.isfinite(bound) else None
