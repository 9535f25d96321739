"""Independent check of a solution: recompute every figure from the library's own records, not the MIP arrays.

It re-reads the chosen variants by name, re-sums the objective and each constrained quantity (with the
non-block part), re-derives throughput and the parent's figures, and compares them with the limits, with the
solution's reported figures, and with the earlier solutions (diversity). Any disagreement is a bug or a
tolerance problem, so it raises instead of returning a wrong architecture.
"""

from __future__ import annotations

from ..library.record import Library, Variant, stats_for_batch
from .config import SearchConfig
from .constraints import THROUGHPUT, Constraint
from .inputs import reference_batch_size, scenario_tokens
from .parent import parent_variants
from .solution import Solution


class SolutionError(RuntimeError):
    """A solution failed its independent verification."""


def verify_solution(solution: Solution, library: Library, config: SearchConfig, earlier: list[Solution] = ()) -> None:
    """Raise `SolutionError` unless `solution` meets every constraint of `config` on recomputation."""
    tol = config.tolerance
    batch = solution.batch_size
    if len(solution.chosen) != library.num_layers:
        raise SolutionError(f"{len(solution.chosen)} layers chosen, the library has {library.num_layers}")
    chosen = []
    for i, name in enumerate(solution.chosen):
        if name not in library.layers[i]:
            raise SolutionError(f"layer_{i}: variant {name!r} is not in the library")
        chosen.append(library.layers[i][name])

    objective = sum(_value(v, config.objective, batch) for v in chosen)
    if not _close(objective, solution.objective, tol):
        raise SolutionError(f"objective {config.objective}: recomputed {objective!r}, reported {solution.objective!r}")

    for c in config.parsed_constraints():
        figure = _figure(library, c, chosen, config, batch)
        parent = None
        if c.uses_parent:
            reference = reference_batch_size(library, config.parent_batch_size)
            parent = _figure(library, c, _parent_chosen(library), config, reference)
        lower = c.lower.resolve(parent) if c.lower else None
        upper = c.upper.resolve(parent) if c.upper else None
        if (upper is not None and figure > upper + tol * max(abs(upper), abs(figure))) or (
            lower is not None and figure < lower - tol * max(abs(lower), abs(figure))
        ):
            raise SolutionError(f"constraint {c.text!r} violated: the child's figure is {figure!r} ({lower}, {upper})")
        if not _close(figure, solution.costs.get(c.text, float("nan")), tol):
            reported = solution.costs.get(c.text)
            raise SolutionError(f"constraint {c.text!r}: recomputed {figure!r}, reported {reported!r}")

    need = config.diversity_layers(library.num_layers)
    for e in earlier:
        differ = sum(a != b for a, b in zip(solution.chosen, e.chosen))
        if differ < need:
            raise SolutionError(f"solution {solution.rank} differs from solution {e.rank} in {differ} < {need} layers")


def _figure(
    library: Library, c: Constraint, chosen: list[Variant] | None, config: SearchConfig, batch: int | None
) -> float:
    """The child's (or, for the parent, the parent's) figure for `c`, in `c`'s units."""
    source, stat = c.column.split(".", 1)
    if chosen is None:  # the parent's figure from its block stats file
        total = stats_for_batch(library.meta.parent_block_stats, batch)[stat] * library.num_layers
    else:
        total = sum(_value(v, c.column, batch) for v in chosen)
    if source == "stats":
        total += stats_for_batch(library.meta.non_block or {}, batch).get(stat, 0.0)
    if c.key == THROUGHPUT:
        tokens = batch * (config.tokens_per_sequence or scenario_tokens(library))
        return tokens * 1000.0 / total if total > 0 else float("inf")
    return total


def _parent_chosen(library: Library) -> list[Variant] | None:
    names = parent_variants(library)
    if all(n is not None for n in names):
        return [library.layers[i][n] for i, n in enumerate(names)]
    if library.meta.parent_block_stats:
        return None
    raise SolutionError("a limit is relative to the parent, whose variants and stats are unknown")


def _value(v: Variant, key: str, batch: int | None) -> float:
    source, stat = key.split(".", 1)
    return float((v.stats_for_batch(batch) if source == "stats" else v.metrics)[stat])


def _close(a: float, b: float, tol: float) -> bool:
    if a == b:
        return True
    return abs(a - b) <= tol * max(abs(a), abs(b), 1e-12)
