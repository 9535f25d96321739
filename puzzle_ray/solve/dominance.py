"""Exact dominance pruning of the MIP's columns.

A variant that is no better than another variant of its layer in the objective and in every quantity a
constraint bounds (no lower where an upper bound applies, no higher where a lower bound applies) can be swapped
for that other variant in any feasible solution without making it infeasible or worse. So dropping it keeps the
optimum of a single-solution solve (and, ignoring the objective, its feasibility). It does not keep diverse
solutions, which may need a dominated variant to differ from an earlier one: those solves keep every column.
"""

from __future__ import annotations

import numpy as np

from .problem import Row, SearchProblem


def undominated(problem: SearchProblem, rows: list[Row], use_objective: bool = True) -> np.ndarray:
    """Sorted indices of the allowed columns (`problem.allowed`) that no other allowed column of their layer
    dominates (of equal ones, the first)."""
    features = []  # each (N,), lower is better
    if use_objective:
        features.append(-problem.objective if problem.maximize else problem.objective)
    for r in rows:
        values = problem.values[r.column]
        if r.upper is not None:
            features.append(values)
        if r.lower is not None:
            features.append(-values)
    n = problem.num_columns
    F = np.stack(features, axis=1) if features else np.zeros((n, 0))  # (N, K)
    keep = []
    for i in range(problem.num_layers):
        columns = allowed_columns(problem, i)
        M = F[columns]  # (m, K)
        no_worse = (M[:, None, :] <= M[None, :, :]).all(axis=2)  # [k, j]: k is nowhere worse than j
        better = (M[:, None, :] < M[None, :, :]).any(axis=2)  # [k, j]: k is somewhere better than j
        m = len(columns)
        earlier = np.arange(m)[:, None] < np.arange(m)[None, :]  # of equal columns the first one stays
        dominated = (no_worse & (better | earlier)).any(axis=0)
        keep.append(columns[~dominated])
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)


def allowed_columns(problem: SearchProblem, layer: int | None = None) -> np.ndarray:
    """Sorted indices of the columns a solution may use (of one layer, when given)."""
    lo, hi = (0, problem.num_columns) if layer is None else (int(problem.offsets[layer]),
                                                               int(problem.offsets[layer + 1]))
    columns = np.arange(lo, hi)
    return columns if problem.allowed is None else columns[problem.allowed[lo:hi]]
