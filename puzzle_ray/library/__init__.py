"""The block library: search space, initialisation from the parent, blockwise local distillation (BLD)."""

from .record import Library, LibraryError, Variant, layer_key, variant_name

__all__ = ["Library", "LibraryError", "Variant", "layer_key", "variant_name"]
