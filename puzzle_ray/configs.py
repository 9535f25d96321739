"""Base class of every typed config: unknown keys are errors, every field has a docstring (litgpt-style).

Stage configs live next to their stage (e.g. `puzzle_ray.library.config`); the workflow config composes them.
A field's docstring is its documentation: `Model.model_fields[name].description` carries it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, frozen=True, validate_default=True)

    def content_hash(self) -> str:
        """Stable hash of the config's values (the cache key of the work it describes)."""
        return content_hash(self.model_dump(mode="json"))


def content_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of `obj` (sorted keys), truncated to `length` hex digits."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
