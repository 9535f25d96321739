"""Exact dominance pruning of the MIP's columns.

A variant that is no better than another variant of its layer in the objective and in every quantity a
constraint bounds (no lower where an upper bound applies, no higher where a lower bound applies) can be swapped
for that other variant in any feasible solution without making it infeasible or worse. So dropping it keeps the
optimum of a single-solution solve (and, ignoring the objective, its feasibility).

A diverse solve must differ from earlier solutions, so the swap must not make it share more layers with them: a
variant is dropped there only when a variant that dominates it is used by no earlier solution in that layer.
The swap then never adds a shared layer (it may remove one), and the kept set still holds a replacement: of the
unused dominators, one that no other unused column dominates is itself kept (dominance is transitive).
"""

from __future__ import annotations

import numpy as np

from .problem import Row, SearchProblem


def undominated(
    problem: SearchProblem, rows: list[Row], use_objective: bool = True, taken: np.ndarray | None = None
) -> np.ndarray:
    """Sorted indices of the allowed columns (`problem.allowed`) that no other allowed column of their layer
    dominates (of equal ones, the first). `taken` (N,) bool: columns earlier solutions use, which may not be the
    dominating column (diverse solves)."""
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
        dominates = no_worse & (better | earlier)
        if taken is not None:
            dominates &= ~taken[columns][:, None]
        dominated = dominates.any(axis=0)
        keep.append(columns[~dominated])
    return np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)


def allowed_columns(problem: SearchProblem, layer: int | None = None) -> np.ndarray:
    """Sorted indices of the columns a solution may use (of one layer, when given)."""
    lo, hi = (0, problem.num_columns) if layer is None else (int(problem.offsets[layer]),
                                                               int(problem.offsets[layer + 1]))
    columns = np.arange(lo, hi)
    return columns if problem.allowed is None else columns[problem.allowed[lo:hi]]
