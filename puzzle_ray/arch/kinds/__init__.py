"""Sub-block kinds as types in one registry (see `base.py`); importing the package registers the built-in ones,
in this order: no-op, linear, GQA attention; no-op, linear, SwiGLU FFN."""

from . import attention, ffn  # noqa: F401  (registers the built-in kinds)
from .base import (
    ROLES,
    BlockConfigError,
    Calibration,
    SubblockKind,
    accepted_keys,
    block_labels,
    check_exclusive,
    kind_in,
    kind_named,
    kind_of,
    kinds,
    register,
    unregister,
    write_part,
)

__all__ = [
    "ROLES",
    "BlockConfigError",
    "Calibration",
    "SubblockKind",
    "accepted_keys",
    "block_labels",
    "check_exclusive",
    "kind_in",
    "kind_named",
    "kind_of",
    "kinds",
    "register",
    "unregister",
    "write_part",
]
