"""Base class of every typed config: unknown keys are errors, every field has a docstring (litgpt-style).

Stage configs live next to their stage (e.g. `puzzle_ray.library.config`); the workflow config composes them.
A field's docstring is its documentation: `Model.model_fields[name].description` carries it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
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


def read_yaml_mapping(path: str | Path, what: str = "file") -> dict[str, Any]:
    """The mapping in a YAML (or JSON) file, {} for an empty one; errors name the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields")
    return data


def validation_problems(error, first_only: bool = False, top: str = "config") -> str:
    """A pydantic ValidationError as `field.path: message` items joined by "; " (or only the first)."""
    errors = error.errors()[:1] if first_only else error.errors()
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or top}: {err['msg']}" for err in errors)
