"""Reduced-cost fixing before the MIP: the LP relaxation's bound removes columns no optimum can use.

With multipliers lam >= 0 for the inequality rows G x <= h (the constraint rows, lower bounds negated, and the
diversity rows), every architecture x costs at least the Lagrangian bound

    LB = sum over layers of min_j (c_j + lam . G_j) - lam . h      c: the objective to minimise

and one that uses column j of layer i at least LB + r_j, where r_j = (c_j + lam . G_j) - that layer's minimum.
A column with LB + r_j above the cost U of a known feasible architecture cannot be in any optimum, so the MIP
is solved without it, and an optimum proven there is proven for the whole problem. The bound holds for any
lam >= 0; the LP relaxation's row duals make it the tightest (the assignment rows alone have integral vertices),
and a feasible architecture comes from the LP point: its few fractional layers are rounded every way, each
rounding improved by single-layer swaps, and the best kept. On the published 70B library's three scenarios the
MIP then has 11-26 % of the (dominance-pruned) columns.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

FEASIBILITY = 1e-9
"""Slack on the scaled rows (bounds near 1) when checking the rounded point: far inside HiGHS's own 1e-7."""
MAX_ROUNDINGS = 4096
"""Fractional layers' roundings tried at most (2 ** 12); beyond that the MIP runs without an incumbent."""


@dataclass
class Bound:
    value: float
    """LB: no architecture costs less (in the minimised objective)."""
    reduced: np.ndarray
    """(n,) r_j >= 0: an architecture with column j costs at least LB + r_j."""

    def keep(self, incumbent_cost: float) -> np.ndarray:
        """(n,) bool: the columns an architecture costing no more than `incumbent_cost` may use."""
        # rounding errors in the bound must never drop a column an optimum uses: a relative margin far above them
        margin = 1e-9 * max(abs(incumbent_cost), abs(self.value), 1.0)
        return self.value + self.reduced <= incumbent_cost + margin


def lagrangian_bound(model, cost: np.ndarray, duals: np.ndarray) -> Bound:
    """The bound and reduced costs for `cost` (n,), the minimised objective, from `duals` (K,), the LP
    relaxation's multipliers of `inequality_rows(model)` (clipped at 0; any lam >= 0 gives a valid bound)."""
    G, h = inequality_rows(model)
    lam = np.clip(np.nan_to_num(duals), 0.0, None)
    priced = cost + lam @ G  # (n,) c_j + lam . G_j
    minimum = np.minimum.reduceat(priced, layer_offsets(model)[:-1])  # (L,) each layer's cheapest priced column
    return Bound(float(minimum.sum() - lam @ h), priced - minimum[model.layer_of])


def inequality_rows(model) -> tuple[np.ndarray, np.ndarray]:
    """(G, h): every inequality of `model` as G x <= h, G (K, n) dense (K is a few rows)."""
    G, h = [], []
    if model.upper is not None:
        G.append(model.upper[0])
        h.append(model.upper[1])
    if model.lower is not None:
        G.append(-model.lower[0])
        h.append(-model.lower[1])
    if model.diversity is not None:
        S, most = model.diversity
        G.append(S.toarray())
        h.append(np.full(S.shape[0], float(most)))
    n = len(model.keep)
    return (np.concatenate(G), np.concatenate(h)) if G else (np.zeros((0, n)), np.zeros(0))


def core_columns(model, bound: Bound, per_layer: int) -> np.ndarray:
    """(n,) bool: each layer's `per_layer` columns of least reduced cost (where the optimum almost always is)."""
    offsets = layer_offsets(model)
    core = np.zeros(len(bound.reduced), dtype=bool)
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        core[lo + np.argsort(bound.reduced[lo:hi], kind="stable")[:per_layer]] = True
    return core


def layer_offsets(model) -> np.ndarray:
    """(L + 1,) where each layer's columns start in the model (its columns are sorted by layer)."""
    return np.searchsorted(model.layer_of, np.arange(model.num_layers + 1))


def rounded_incumbent(model, cost: np.ndarray, lp_point: np.ndarray) -> np.ndarray | None:
    """(L,) model columns of a feasible architecture near the LP point `lp_point` (n,), or None: the cheapest
    feasible rounding of its fractional layers, each improved by single-layer swaps."""
    G, h = inequality_rows(model)
    return _round(model, cost, G, h, lp_point, layer_offsets(model))


def _round(model, cost, G, h, lp_point, offsets) -> np.ndarray | None:
    """(L,) the cheapest feasible architecture among the roundings of the LP point's fractional layers (each
    layer takes one of its columns with a positive LP value), or None when none is feasible."""
    candidates = []
    for i in range(model.num_layers):
        lo, hi = offsets[i], offsets[i + 1]
        positive = lo + np.flatnonzero(lp_point[lo:hi] > 1e-6)
        candidates.append(positive if len(positive) else np.array([lo + int(np.argmax(lp_point[lo:hi]))]))
    fractional = [i for i, c in enumerate(candidates) if len(c) > 1]
    if np.prod([len(candidates[i]) for i in fractional], dtype=float) > MAX_ROUNDINGS:
        return None
    base = np.array([c[0] for c in candidates])
    best, best_cost = None, np.inf
    for choice in itertools.product(*(candidates[i] for i in fractional)):
        columns = base.copy()
        columns[fractional] = choice
        if (G[:, columns].sum(axis=1) <= h + FEASIBILITY).all():
            columns = _improve(model, cost, G, h, columns)
            if cost[columns].sum() < best_cost:
                best, best_cost = columns, cost[columns].sum()
    return best


def _improve(model, cost, G, h, columns: np.ndarray) -> np.ndarray:
    """Local search from a feasible architecture: swap in, one layer at a time, the column that lowers the cost
    most while every row stays within its bound, until no single swap helps. (L,) columns in, (L,) out."""
    columns = columns.copy()
    used = G[:, columns].sum(axis=1)  # (K,)
    for _ in range(4 * model.num_layers):  # each swap lowers the cost; the cap only bounds a pathological run
        current = columns[model.layer_of]  # (n,) the column each candidate would replace
        fits = (used[:, None] - G[:, current] + G <= (h + FEASIBILITY)[:, None]).all(axis=0)  # (n,)
        gain = np.where(fits, cost[current] - cost, 0.0)
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        used += G[:, j] - G[:, current[j]]
        columns[model.layer_of[j]] = j
    return columns
