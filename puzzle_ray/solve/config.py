"""Typed configuration of the search stage (the Puzzle MIP)."""

from __future__ import annotations

import math
from typing import Union

from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt, StrictBool, StrictFloat, StrictInt, field_validator

from ..configs import StrictConfig
from ..serving.matrix import EngineId
from .constraints import THROUGHPUT, Constraint, check_key, parse_constraint


class SearchConfig(StrictConfig):
    objective: str = "metrics.kl_div"
    """Per-variant quantity summed over layers and minimised (`metrics.<name>` or `stats.<name>`)."""
    maximize: bool = False
    """Maximise the objective instead (for metrics where bigger is better, e.g. accuracy)."""
    constraints: list[str] = []
    """Constraint expressions, e.g. 'stats.memory_mib<=80000', 'throughput>=0.85*parent' (see search.constraints)."""
    num_solutions: PositiveInt = 1
    """Diverse solutions to return, best first; each differs from every earlier one in `min_diversity` layers."""
    min_diversity: Union[StrictInt, StrictFloat] = 1
    """Layers (an int >= 1) or fraction of the layers (a float in (0, 1]) in which solutions must differ."""
    batch_sizes: list[PositiveInt] | None = None
    """Batch sizes to try, one MIP each (Ray tasks in parallel); default: every batch size the library measured."""
    parent_batch_size: PositiveInt | None = None
    """Batch size of the parent's figures behind relative limits ('0.85*parent'); default: the scenario's
    first batch size, so a relative limit is one budget for every batch size tried."""
    tokens_per_sequence: PositiveInt | None = None
    """Tokens each sequence of the request batch counts for `throughput` (default: the library scenario's
    `sequence_length`, else prefill + decode length)."""
    mip_rel_gap: NonNegativeFloat = 1e-6
    """Relative MIP gap at which HiGHS stops (the default proves optimality for all practical purposes)."""
    time_limit_s: PositiveFloat = 60.0
    """HiGHS time limit per MIP; a solve stopped by it reports status 'time_limit' and its gap."""
    highs_options: dict[str, Union[StrictBool, StrictInt, StrictFloat, str]] = {
        "mip_heuristic_run_rins": False,
        "mip_heuristic_run_rens": False,
        "mip_allow_cut_separation_at_nodes": False,
        "threads": 1,
    }
    """Extra HiGHS options. The default skips the RINS/RENS sub-MIP heuristics: on the published 70B library and
    the synthetic 80/126 x 54 ones it cut HiGHS's CPU time by 10-40% (same optima). Separating cuts at the root
    node only, on one thread (a Ray task has one CPU), cut `search()`'s CPU time by another 37-44% on the
    published library's three scenarios and 3-34% on the synthetic ones (same optima; wall time 3-10% longer on
    two synthetic scenarios where HiGHS's second thread had helped). Where this process's HiGHS already runs
    more threads, a solve uses those. `{}` restores HiGHS's own."""
    use_ray: bool | None = None
    """Solve the batch sizes as Ray tasks (default: when there is more than one batch size)."""
    tolerance: PositiveFloat = 1e-6
    """Relative slack allowed when a solution's constraints are recomputed from the library."""
    engines: list[EngineId] = []
    """Inference engines that must serve the child (vllm, sglang, tensorrt-llm, llama.cpp, mlx): the search keeps
    only the per-layer variants all of them read correctly (`serving/matrix.py`); [] searches the whole library."""

    @field_validator("objective")
    @classmethod
    def _objective_key(cls, value: str) -> str:
        if value == THROUGHPUT:
            raise ValueError("objective: 'throughput' is not a sum over layers; constrain it instead")
        try:
            return check_key(value, "objective")
        except ValueError as e:
            raise ValueError(str(e)) from None

    @field_validator("constraints")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                parse_constraint(text)
            except ValueError as e:
                raise ValueError(str(e)) from None
        return value

    @field_validator("engines")
    @classmethod
    def _unique_engines(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @field_validator("min_diversity")
    @classmethod
    def _diversity(cls, value):
        if isinstance(value, int) and value < 1:
            raise ValueError(f"min_diversity={value}: give at least 1 layer (or a fraction in (0, 1])")
        if isinstance(value, float) and not (0 < value <= 1 and math.isfinite(value)):
            raise ValueError(f"min_diversity={value}: a fraction must be in (0, 1]")
        return value

    @field_validator("batch_sizes")
    @classmethod
    def _batches(cls, value):
        if value is not None and (not value or len(set(value)) != len(value)):
            raise ValueError(f"batch_sizes={value}: give distinct batch sizes, or leave it unset")
        return value

    @field_validator("highs_options")
    @classmethod
    def _highs(cls, value):
        from .highs import check_highs_option

        for name, option in value.items():
            check_highs_option(name, option)
        return value

    def parsed_constraints(self) -> list[Constraint]:
        return [parse_constraint(t) for t in self.constraints]

    def diversity_layers(self, num_layers: int) -> int:
        """`min_diversity` in layers for a library of `num_layers` layers."""
        if isinstance(self.min_diversity, float):
            return max(1, math.ceil(self.min_diversity * num_layers - 1e-9))
        return self.min_diversity
