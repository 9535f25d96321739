"""Hardware measurement of every block variant (a Ray task fleet) and the cost model built on it.

measure_library(library, parent, scenario, config, store) -> Library with measured `stats`
measure_blocks(parent, blocks, scenario, config, store)   -> Measurements (lower level, cached)
predict_model_costs(model_config, library)                -> {batch: ModelCosts} from the stats
measure_model_costs(model or folder, scenario)            -> {batch: ModelCosts} measured end-to-end
measure_models_costs({name: model}, scenario)             -> {name: {batch: ModelCosts}}, timed in shared rounds
"""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".config": ["MeasureConfig", "MeasureStageConfig", "Scenario"],
    ".cost_model": [
        "ModelCosts", "compare_costs", "measure_model_costs", "measure_models_costs", "predict_model_costs",
    ],
    ".fleet": ["measure_blocks", "measure_units"],
    ".library": ["measure_library", "skeleton_library"],
    ".results": ["MeasureError", "Measurements"],
    ".timed_block": ["TimedBlock"],
})

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
    "measure_models_costs",
    "measure_units",
    "predict_model_costs",
    "skeleton_library",
]
