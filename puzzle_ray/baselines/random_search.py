"""Random architectures from Puzzle's library at (about) the target speed: the paper's random baseline.

Every layer's variant is drawn uniformly from the library; a draw is accepted when its predicted decode time
lies in [band x budget, budget], so random children are as fast as the others (meet the target, and are not
much faster than it). Deterministic given the seed: draws come in vectorised chunks from one numpy generator.
"""

from __future__ import annotations

import numpy as np

from ..library.record import Library
from .costs import CostModel
from .greedy import cost_table


class NoRandomArchitecture(ValueError):
    """No draw landed in the speed band (the band is too narrow for the library, or the target unreachable)."""


def random_architecture(library: Library, costs: CostModel, target: float, seed: int | list[int], band: float = 0.9,
                        max_draws: int = 2_000_000, chunk: int = 50_000) -> list[str]:
    """Variant names per layer of the first accepted draw."""
    if not 0 < band <= 1:
        raise ValueError(f"band={band} must be in (0, 1]")
    table = cost_table(library, costs)
    names = [list(layer) for layer in table]
    values = [np.array([layer[n] for n in layer_names]) for layer, layer_names in zip(table, names)]
    budget = costs.budget(target)
    low = band * budget
    rng = np.random.default_rng(seed)
    for _ in range(0, max_draws, chunk):
        picks = np.stack([rng.integers(0, len(v), size=chunk) for v in values], axis=1)  # (chunk, L)
        totals = costs.non_block + sum(v[picks[:, i]] for i, v in enumerate(values))  # (chunk,)
        hit = np.flatnonzero((totals <= budget) & (totals >= low))
        if hit.size:
            row = picks[hit[0]]
            return [names[i][int(k)] for i, k in enumerate(row)]
    raise NoRandomArchitecture(
        f"no random architecture in {max_draws:,} draws has a predicted decode time in [{low:.4g}, {budget:.4g}] ms "
        f"(target {target}x); widen random_band or lower the target"
    )
