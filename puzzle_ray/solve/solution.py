"""What the search returns: the chosen architecture per layer, its predicted costs and the solver's account.

Realising a child needs only `chosen` (the variant names) and the library; `block_configs` is ready for
`PuzzleConfig(block_configs=...)`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..arch.blocks import BlockConfig
from ..library.record import layer_key


@dataclass
class Solution:
    chosen: list[str]
    """Per layer, the chosen variant's name in the library."""
    blocks: list[BlockConfig | None]
    """Per layer, the chosen variant's block config (None where the library does not know it)."""
    objective: float
    """Sum of the objective over the chosen variants."""
    objective_key: str
    maximize: bool
    costs: dict[str, float]
    """Predicted figure per constraint (keyed by its text, in its own units) and the library's headline totals
    (stats.memory_mib, stats.runtime_ms, stats.num_params, stats.prefill_ms, where measured)."""
    limits: dict[str, list[float | None]]
    """Per constraint, the resolved [lower, upper] bound in its own units (None: unbounded)."""
    status: str
    """'optimal' (to mip_rel_gap) or 'time_limit'."""
    mip_gap: float | None
    solve_time_s: float
    """HiGHS run time."""
    build_time_s: float
    """Model building and canonicalisation time."""
    batch_size: int | None
    rank: int = 0
    """0 for the best solution, then 1, 2, ... for the diverse ones."""
    layers_changed: int | None = None
    """Layers whose variant differs from the parent's block (None when the parent variant is unknown)."""
    verified: bool = False
    """Every constraint and the objective were recomputed from the library and hold."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def block_configs(self) -> list[BlockConfig]:
        """For `PuzzleConfig(block_configs=...)`. Raises naming the first layer without a known block."""
        missing = [i for i, b in enumerate(self.blocks) if b is None]
        if missing:
            raise ValueError(
                f"layer_{missing[0]} ({self.chosen[missing[0]]!r}): the library has no block config for this variant "
                "(published libraries need num_attention_heads to map num_kv_heads to block configs)"
            )
        return list(self.blocks)

    def block_config_dicts(self, hidden_size: int | None = None) -> list[dict[str, Any] | None]:
        """The published per-layer dicts (with `ffn_mult` when `hidden_size` is known)."""
        return [None if b is None else block_to_dict(b, hidden_size) for b in self.blocks]

    def to_json(self, hidden_size: int | None = None) -> dict[str, Any]:
        out = asdict(self)
        del out["blocks"]
        out["chosen"] = {layer_key(i): name for i, name in enumerate(self.chosen)}
        out["block_configs"] = self.block_config_dicts(hidden_size)
        out["costs"] = {k: _finite(v) for k, v in self.costs.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Solution:
        data = dict(data)
        chosen = data.pop("chosen")
        chosen = [chosen[layer_key(i)] for i in range(len(chosen))] if isinstance(chosen, dict) else list(chosen)
        blocks = [None if b is None else BlockConfig.from_dict(b, i) for i, b in enumerate(data.pop("block_configs"))]
        return cls(chosen=chosen, blocks=blocks, **data)


def block_to_dict(block: BlockConfig, hidden_size: int | None) -> dict[str, Any]:
    """`BlockConfig.to_dict` needs the hidden size for `ffn_mult`; without it, the width as given alone."""
    return block.to_dict(hidden_size or None)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
