"""Baselines to Puzzle at equal speed, for the headline benchmark (`benchmarks/headline.py`).

Every method is held to Puzzle's own cost model (`costs.CostModel`: measured per-block decode times):

    uniform.choose_uniform        one FFN width / KV-head count everywhere (Minitron-style width pruning)
    depth.choose_depth            whole layers removed by block influence (ShortGPT-style)
    greedy.greedy_search          best objective-per-ms single-layer changes over Puzzle's library
    random_search.random_architecture   random library architectures within the target's speed band
    prune.prune_from_parent       a child initialised from the parent (channel contribution, KV pooling)
"""

from .calibration import ParentCalibration, calibrate_parent
from .config import METHODS, HeadlineConfig, load_headline
from .costs import CostModel, cost_library
from .depth import REMOVED, DepthChoice, choose_depth
from .greedy import greedy_search
from .prune import prune_from_parent
from .random_search import NoRandomArchitecture, random_architecture
from .uniform import UniformChoice, choose_uniform, fastest_speedup, uniform_candidates

__all__ = [
    "METHODS",
    "REMOVED",
    "CostModel",
    "DepthChoice",
    "HeadlineConfig",
    "NoRandomArchitecture",
    "ParentCalibration",
    "UniformChoice",
    "calibrate_parent",
    "choose_depth",
    "choose_uniform",
    "cost_library",
    "fastest_speedup",
    "greedy_search",
    "load_headline",
    "prune_from_parent",
    "random_architecture",
    "uniform_candidates",
]
