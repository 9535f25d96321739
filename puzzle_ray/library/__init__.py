"""The block library: search space, initialisation from the parent, blockwise local distillation (BLD)."""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".record": ["Library", "LibraryError", "Variant", "layer_key", "variant_name"],
})

__all__ = ["Library", "LibraryError", "Variant", "layer_key", "variant_name"]
