"""A validation finding: where (resource and field) and what is wrong."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    where: str  # "RayJob/puzzle-ray-workflow spec.rayClusterSpec.workerGroupSpecs[0]" or a file path
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def field_path(parts: Iterable[Any]) -> str:
    """["spec", "workerGroupSpecs", 0, "template"] -> "spec.workerGroupSpecs[0].template"."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def resource_name(doc: dict) -> str:
    """ "Kind/name" of a manifest, the prefix of every Problem about it."""
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    return f"{doc.get('kind', '?')}/{meta.get('name', '?')}"


def at(doc: dict, *parts: Any) -> str:
    """Where-string for a field of a manifest: at(doc, "spec", "replicas") -> "Deployment/mlflow spec.replicas"."""
    path = field_path(parts)
    return f"{resource_name(doc)} {path}" if path else resource_name(doc)
