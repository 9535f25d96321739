"""Serving engines: which inference engines read an exported child correctly (the table in `matrix.py`), asked
by export warnings, `puzzle-ray inspect`, the model card and engine-aware search (`search.engines`)."""

from .._lazy import lazy_package

lazy_package(__name__, {
    ".matrix": ["CASES", "ENGINE_IDS", "ENGINE_NAMES", "MATRIX", "NOTES", "Entry"],
    ".check": ["engine_report", "layer_cases", "serving_engines", "unserved"],
})

__all__ = ["CASES", "ENGINE_IDS", "ENGINE_NAMES", "MATRIX", "NOTES", "Entry", "layer_cases", "engine_report",
           "serving_engines", "unserved"]
