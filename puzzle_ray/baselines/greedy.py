"""Greedy layer-wise search over Puzzle's library (the paper's greedy baseline to the MIP).

Start from the parent's variant in every layer; repeatedly make the one single-layer change with the least
objective increase per millisecond of decode time saved, until the predicted decode time meets the budget.
Quality is the MIP's own objective (replace-1-block scores such as metrics.kl_div, lower is better) and
cost the MIP's own constraint column, so greedy and the MIP differ only in how they search.
"""

from __future__ import annotations

import math

from ..library.record import Library, LibraryError
from ..solve.parent import parent_variants
from .costs import CostModel


def objective_table(library: Library, objective: str) -> list[dict[str, float]]:
    """Per layer, {variant name: objective value}; raises naming the first variant without it."""
    source, name = objective.split(".", 1)
    out = []
    for i, layer in enumerate(library.layers):
        values = {}
        for vname, v in layer.items():
            table = v.metrics if source == "metrics" else v.stats
            if not isinstance(table.get(name), (int, float)) or not math.isfinite(table[name]):
                raise LibraryError(f"layer_{i} / {vname!r}: no finite {objective} (was the library scored?)")
            values[vname] = float(table[name])
        out.append(values)
    return out


def cost_table(library: Library, costs: CostModel) -> list[dict[str, float]]:
    """Per layer, {variant name: predicted cost} from the cost model (by block config, not by name)."""
    return [{n: costs.block_cost(i, v.block_config) for n, v in layer.items()}
            for i, layer in enumerate(library.layers)]


def greedy_search(library: Library, costs: CostModel, objective: str, target: float) -> list[str] | None:
    """Variant names per layer, or None when no sequence of changes reaches the target."""
    quality, cost = objective_table(library, objective), cost_table(library, costs)
    chosen = parent_variants(library)
    if any(c is None for c in chosen):
        raise LibraryError("greedy search starts from the parent: some layer has no variant marked as the parent's")
    budget, total = costs.budget(target), costs.non_block + sum(cost[i][n] for i, n in enumerate(chosen))
    while total > budget:
        best = None  # (objective increase per ms saved, layer, variant)
        for i, current in enumerate(chosen):
            for name, c in cost[i].items():
                saved = cost[i][current] - c
                if saved <= 0:
                    continue
                rate = (quality[i][name] - quality[i][current]) / saved
                if best is None or rate < best[0]:
                    best = (rate, i, name)
        if best is None:
            return None
        _, i, name = best
        total -= cost[i][chosen[i]] - cost[i][name]
        chosen[i] = name
    return chosen
