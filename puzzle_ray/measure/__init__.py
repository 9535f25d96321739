"""Hardware measurement of every block variant (a Ray task fleet) and the cost model built on it.

measure_library(library, parent, scenario, config, store) -> Library with measured `stats`
measure_blocks(parent, blocks, scenario, config, store)   -> Measurements (lower level, cached)
predict_model_costs(model_config, library)                -> {batch: ModelCosts} from the stats
measure_model_costs(model or folder, scenario)            -> {batch: ModelCosts} measured end-to-end
"""

from .config import MeasureConfig, MeasureStageConfig, Scenario
from .cost_model import ModelCosts, compare_costs, measure_model_costs, predict_model_costs
from .fleet import measure_blocks, measure_units
from .library import measure_library, skeleton_library
from .results import MeasureError, Measurements
from .timed_block import TimedBlock

__all__ = [
    "MeasureConfig",
    "MeasureError",
    "MeasureStageConfig",
    "Measurements",
    "ModelCosts",
    "Scenario",
    "TimedBlock",
    "compare_costs",
    "measure_blocks",
    "measure_library",
    "measure_model_costs",
    "measure_units",
    "predict_model_costs",
    "skeleton_library",
]
