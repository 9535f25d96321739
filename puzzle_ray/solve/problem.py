"""The MIP's data at one batch size: every (layer, variant) pair as one column, validated before any solve.

Columns are laid out layer by layer: layer i owns columns offsets[i]:offsets[i+1]. A constraint becomes a `Row`
on the child's total of one per-variant quantity (the column values summed over the chosen variants, plus the
non-block part), with absolute bounds: fractions of the parent and throughput targets are resolved here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from ..library.record import Library, LibraryError, stats_for_batch
from .config import SearchConfig
from .constraints import THROUGHPUT, Constraint
from .engines import served_variants
from .inputs import reference_batch_size, scenario_tokens
from .parent import parent_variants


@dataclass(frozen=True)
class Row:
    """lower <= sum(values[column] of the chosen variants) + constant[column] <= upper (None: unbounded)."""

    name: str
    """The constraint's text, e.g. 'stats.memory_mib<=80000'."""
    column: str
    lower: float | None
    upper: float | None
    limits: tuple[float | None, float | None]
    """The constraint's own (lower, upper) limits, in its units (tokens/s for throughput)."""


@dataclass
class SearchProblem:
    batch_size: int | None
    names: list[list[str]]
    """Variant names, per layer."""
    offsets: np.ndarray
    """(L + 1,) first column of each layer; the last entry is the number of columns N."""
    objective_key: str
    maximize: bool
    objective: np.ndarray
    """(N,) the objective's per-variant values."""
    values: dict[str, np.ndarray]
    """Column key ('stats.memory_mib', ...) -> (N,) per-variant values."""
    constant: dict[str, float]
    """Column key -> the non-block part (0 when the library has none for it)."""
    constraints: list[Constraint]
    rows: list[Row]
    """One per constraint, same order."""
    tokens_per_batch: int | None
    """batch x tokens per sequence, for throughput (None when no throughput constraint)."""
    parent_columns: list[int] | None
    """Column of each layer's parent variant, when every layer has one."""
    parent_figure: dict[str, float] = field(default_factory=dict)
    """Constraint key -> the parent's figure (at the reference batch size), for limits relative to the parent."""
    allowed: np.ndarray | None = None
    """(N,) bool: the columns a solution may use (`search.engines`: the variants those engines serve); None: all.
    The other columns stay in the problem, so parent figures and verification read the whole library."""

    @property
    def num_layers(self) -> int:
        return len(self.names)

    @property
    def num_columns(self) -> int:
        return int(self.offsets[-1])

    @property
    def layer_of(self) -> np.ndarray:
        """(N,) layer index of every column."""
        return np.repeat(np.arange(self.num_layers), np.diff(self.offsets))

    def columns_of(self, chosen: list[str]) -> np.ndarray:
        """(L,) column of each layer's chosen variant."""
        return np.array([self.offsets[i] + self.names[i].index(n) for i, n in enumerate(chosen)])

    def total(self, column: str, cols: np.ndarray) -> float:
        return float(self.values[column][cols].sum() + self.constant[column])

    def cost(self, constraint: Constraint, cols: np.ndarray) -> float:
        """The child's figure for `constraint`, in its own units (tokens/s for throughput)."""
        total = self.total(constraint.column, cols)
        if constraint.key == THROUGHPUT:
            return self.tokens_per_batch * 1000.0 / total if total > 0 else math.inf
        return total


def _check_keys_exist(library: Library, keys: list[str], purpose: dict[str, str], batch_size: int | None) -> None:
    """A key that no variant has is a misspelt objective or constraint, not a broken library: say so, listing the
    keys the library has (a key only some variants lack is the library's fault, named per variant below)."""
    have: dict[str, set[str]] = {"stats": set(), "metrics": set()}
    for i, layer in enumerate(library.layers):
        for name, variant in layer.items():
            have["stats"] |= set(_batch_stats(variant.stats, batch_size, f"layer_{i} / {name!r}"))
            have["metrics"] |= set(variant.metrics)
    for key in keys:
        source, stat = key.split(".", 1)
        if stat not in have[source]:
            listed = ", ".join(f"{source}.{k}" for k in sorted(have[source])) or "none"
            raise LibraryError(f"{purpose[key]}: no variant of the library has {key} (it has {listed})")


def build_problem(library: Library, config: SearchConfig, batch_size: int | None) -> SearchProblem:
    """Validate the library for this search and lay out the MIP data. Raises naming the layer and variant."""
    if library.num_layers == 0:
        raise LibraryError("the library has no layers")
    constraints = config.parsed_constraints()
    keys = list(dict.fromkeys([config.objective] + [c.column for c in constraints]))
    purpose = {config.objective: "the objective"}
    for c in constraints:
        purpose.setdefault(c.column, f"constraint {c.text!r}")

    _check_keys_exist(library, keys, purpose, batch_size)
    names, columns = [], {k: [] for k in keys}
    for i, layer in enumerate(library.layers):
        if not layer:
            raise LibraryError(f"layer_{i}: no variants")
        names.append(list(layer))
        for name, variant in layer.items():
            where = f"layer_{i} / {name!r}"
            stats = _batch_stats(variant.stats, batch_size, where)
            for key in keys:
                source, stat = key.split(".", 1)
                table = stats if source == "stats" else variant.metrics
                if stat not in table:
                    raise LibraryError(f"{where}: no {key} (needed by {purpose[key]})")
                columns[key].append(_checked(table[stat], f"{where}: {key}"))

    offsets = np.concatenate([[0], np.cumsum([len(n) for n in names])])
    values = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}
    constant = _non_block(library, keys, batch_size)
    parents = parent_variants(library)
    parent_columns = None
    if all(p is not None for p in parents):
        parent_columns = [int(offsets[i]) + names[i].index(p) for i, p in enumerate(parents)]

    problem = SearchProblem(
        batch_size=batch_size,
        names=names,
        offsets=offsets,
        objective_key=config.objective,
        maximize=config.maximize,
        objective=values[config.objective],
        values=values,
        constant=constant,
        constraints=constraints,
        rows=[],
        tokens_per_batch=None,
        parent_columns=parent_columns,
    )
    if any(c.key == THROUGHPUT for c in constraints):
        problem.tokens_per_batch = _tokens_per_batch(library, config, batch_size)
    for c in constraints:
        if c.uses_parent and c.key not in problem.parent_figure:
            problem.parent_figure[c.key] = _parent_figure(library, config, c, parents)
    problem.rows = [_row(problem, c) for c in constraints]
    if config.engines:
        served = [set(s) for s in served_variants(library, config.engines)]  # raises naming an empty layer
        problem.allowed = np.array([n in served[i] for i, layer in enumerate(names) for n in layer])
    if config.num_solutions > 1 and config.diversity_layers(problem.num_layers) > problem.num_layers:
        raise ValueError(
            f"min_diversity={config.min_diversity}: more layers than the library's {problem.num_layers}"
        )
    return problem


def _row(problem: SearchProblem, c: Constraint) -> Row:
    parent = problem.parent_figure.get(c.key)
    lower = c.lower.resolve(parent) if c.lower else None
    upper = c.upper.resolve(parent) if c.upper else None
    column_lower, column_upper = lower, upper
    if c.key == THROUGHPUT:
        # throughput = tokens / runtime: a bound on one is the reciprocal bound on the other (both > 0).
        tokens_ms = problem.tokens_per_batch * 1000.0
        column_lower = tokens_ms / upper if upper is not None else None
        column_upper = tokens_ms / lower if lower is not None else None
    return Row(c.text, c.column, column_lower, column_upper, (lower, upper))


def _tokens_per_batch(library: Library, config: SearchConfig, batch_size: int | None) -> int:
    if batch_size is None:
        raise LibraryError(
            "constraint 'throughput': the batch size is unknown (the library has no scenario); set batch_sizes"
        )
    tokens = config.tokens_per_sequence or scenario_tokens(library)
    if tokens is None:
        raise LibraryError(
            "constraint 'throughput': tokens per sequence unknown (the library scenario has no sequence_length); "
            "set tokens_per_sequence"
        )
    return batch_size * tokens


def _parent_figure(library: Library, config: SearchConfig, c: Constraint, parents: list[str | None]) -> float:
    """The parent's figure for `c` in its units, from the parent variants (or the parent block stats) at the
    reference batch size."""
    batch = reference_batch_size(library, config.parent_batch_size)
    source, stat = c.column.split(".", 1)
    where = f"constraint {c.text!r}: the parent's figure"
    if all(p is not None for p in parents):
        total = 0.0
        for i, p in enumerate(parents):
            v, at = library.layers[i][p], f"{where}: layer_{i} / {p!r}"
            table = _batch_stats(v.stats, batch, at) if source == "stats" else v.metrics
            if stat not in table:
                raise LibraryError(f"{at}: no {c.column}")
            total += _checked(table[stat], f"{at}: {c.column}")
    elif library.meta.parent_block_stats and source == "stats":
        at = f"{where}: parent block stats"
        per_block = _batch_stats(library.meta.parent_block_stats, batch, at)
        if stat not in per_block:
            raise LibraryError(f"{at}: no {c.column}")
        total = _checked(per_block[stat], f"{at}: {c.column}") * library.num_layers
    else:
        missing = next((i for i, p in enumerate(parents) if p is None), 0)
        raise LibraryError(
            f"{where} is unknown: no variant of layer_{missing} is marked as the parent's block and there is "
            "no parent stats file (parent_block_stats.json, or --parent-stats)"
        )
    if source == "stats":
        total += _non_block(library, [c.column], batch)[c.column]
    if c.key == THROUGHPUT:
        tokens = _tokens_per_batch(library, config, batch)
        return tokens * 1000.0 / total if total > 0 else math.inf
    return total


def _batch_stats(stats: dict, batch_size: int | None, where: str) -> dict:
    try:
        return stats_for_batch(stats, batch_size)
    except LibraryError as e:
        raise LibraryError(f"{where}: {e}") from None


def _non_block(library: Library, keys: list[str], batch_size: int | None) -> dict[str, float]:
    """The non-block part (embeddings, final norm, LM head) adds to stats totals; metrics have none."""
    raw = library.meta.non_block or {}
    stats = _batch_stats(raw, batch_size, "non_block") if raw else {}
    out = {}
    for key in keys:
        source, stat = key.split(".", 1)
        out[key] = _checked(stats[stat], f"non_block: {key}") if source == "stats" and stat in stats else 0.0
    return out


def _checked(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise LibraryError(f"{where} = {value!r} is not a number")
    if not math.isfinite(value):
        raise LibraryError(f"{where} = {value} is not finite")
    if value < 0:
        raise LibraryError(f"{where} = {value} is negative (costs and scores must be >= 0)")
    return float(value)
