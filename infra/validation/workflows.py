"""The workflow configs shipped to the cluster. kustomize reads no file outside a kustomization's folder, so each
overlay keeps a verbatim copy of the workflows/*.yaml plan it runs; these checks keep the copies identical to
the originals, and `sync_workflow_copies` (`python -m infra.validation --sync-workflows`) renews them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from .manifests import load_yaml_documents
from .problem import Problem


@dataclass(frozen=True)
class WorkflowCopy:
    kustomization: Path  # the folder whose configMapGenerator ships it
    key: str  # the ConfigMap key, i.e. the file name in the mounted folder
    path: Path  # the copy, beside the kustomization

    def original(self, root: Path) -> Path:
        return root / "workflows" / self.path.name


def workflow_copies(kustomizations: list[Path]) -> list[WorkflowCopy]:
    """Every `files:` entry of every configMapGenerator of the given kustomization folders."""
    copies = []
    for folder in kustomizations:
        kustomization = load_yaml_documents(folder / "kustomization.yaml")[0]
        for generator in kustomization.get("configMapGenerator") or []:
            for entry in generator.get("files") or []:
                key, _, source = entry.rpartition("=")
                copies.append(WorkflowCopy(folder, key or Path(source).name, folder / source))
    return copies


def check_workflow_copies(copies: list[WorkflowCopy], root: Path) -> list[Problem]:
    problems = []
    for copy in copies:
        where = str(copy.path.relative_to(root))
        if not copy.path.is_file():
            problems.append(Problem(where, "listed by configMapGenerator but missing"))
            continue
        try:
            content = yaml.safe_load(copy.path.read_text())
        except yaml.YAMLError as e:
            problems.append(Problem(where, f"not valid YAML: {e}"))
            continue
        if not isinstance(content, dict):
            problems.append(Problem(where, "a workflow config must be a YAML mapping"))
        original = copy.original(root)
        if original.is_file() and original.read_bytes() != copy.path.read_bytes():
            problems.append(
                Problem(
                    where,
                    f"differs from {original.relative_to(root)}: run `python -m infra.validation --sync-workflows`",
                )
            )
    return problems


def sync_workflow_copies(copies: list[WorkflowCopy], root: Path) -> list[Path]:
    """Copy workflows/<name> over each overlay copy that differs; returns the copies rewritten."""
    changed = []
    for copy in copies:
        original = copy.original(root)
        if original.is_file() and (not copy.path.is_file() or original.read_bytes() != copy.path.read_bytes()):
            shutil.copyfile(original, copy.path)
            changed.append(copy.path)
    return changed
