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
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a text file (not UTF-8: {e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields")
    return data


def validation_problems(error, first_only: bool = False, top: str = "config") -> str:
    """A pydantic ValidationError as `field.path: message` items joined by "; " (or only the first), unknown
    fields first (a misspelt field is the likelier cause of a "Field required" beside it)."""
    errors = sorted_errors(error)
    errors = errors[:1] if first_only else errors
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or top}: {error_message(err)}" for err in errors)


def option_problems(error, options: dict[str, str], rest: str = "config") -> str:
    """A ValidationError of a config built from command-line options, joined by "; ": a problem of a field that an
    option set is named by that option and the value given (`--engine 'horovod': Input should be ...`), any other
    as `REST: field.path: message` (`rest`: where the other fields came from, e.g. the config file). `options`
    maps field paths (`engine`, or `measure.cpu_clock` in a sectioned config) to the option that set them."""
    out = []
    for err in sorted_errors(error):
        loc = [str(part) for part in err["loc"]]
        # the longest option path that the error's location starts with (`engines` for `engines.0`)
        field = next((".".join(loc[:n]) for n in range(len(loc), 0, -1) if ".".join(loc[:n]) in options), None)
        if field is not None:  # a whole repeated option's list is not shown: its validator's message names the item
            given = "" if isinstance(err["input"], (list, tuple, dict)) else f" {err['input']!r}"
            # a validator's own "field='value': " prefix would repeat what the option part says
            msg = err["msg"].removeprefix("Value error, ").removeprefix(f"{loc[-1]}={err['input']!r}: ")
            out.append(f"{options[field]}{given}: {msg}")
        else:
            where = ".".join(loc) or "config"
            out.append(f"{rest}: {where}: {error_message(err)}")
    return "; ".join(out)


def given_options(values: dict[str, Any], section: str | None = None) -> dict[str, str]:
    """`option_problems`' map for options spelt `--field-name` after their field: the fields given (not None),
    under `section` if the config has sections."""
    prefix = f"{section}." if section else ""
    return {prefix + k: "--" + k.replace("_", "-") for k, v in values.items() if v is not None}


def sorted_errors(error) -> list[dict[str, Any]]:
    """A ValidationError's errors, unknown fields (`extra_forbidden`) first, otherwise in pydantic's order."""
    return sorted(error.errors(), key=lambda err: err["type"] != "extra_forbidden")


def error_message(err: dict[str, Any]) -> str:
    """One pydantic error's message; a choice that is not one of the allowed values says what was given."""
    if err["type"] in ("literal_error", "enum"):
        return f"{err['msg']} (got {err['input']!r})"
    return err["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's ValueError
