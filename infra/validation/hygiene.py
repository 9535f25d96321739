"""Repository hygiene of the manifests: no Secret values committed, labels that the README's `kubectl apply -l`
selectors rely on, and every PVC / ConfigMap that a pod mounts is part of the manifests."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from .manifests import find, namespace_of, pod_templates
from .problem import Problem, at

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL", re.IGNORECASE)
# scheme://user:password@host: a credential written into a URL.
CREDENTIAL_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE)

PART_OF = "puzzle-ray"
# infra/README.md applies subsets with `-l app.kubernetes.io/component!=...`.
COMPONENTS = ("namespace", "tracking-server", "shared", "workflow-job", "interactive-cluster")


def check_no_secrets(docs: list[dict]) -> list[Problem]:
    problems = []
    for doc in docs:
        if doc.get("kind") == "Secret":
            problems.append(Problem(at(doc), "Secrets are created by hand (infra/README.md), never committed"))
        for path, value in _strings(doc, ()):
            if CREDENTIAL_URL.search(value):
                problems.append(Problem(at(doc, *path), "a URL with an embedded credential"))
        for path, template in pod_templates(doc):
            for ckey in ("initContainers", "containers"):
                for i, container in enumerate((template.get("spec") or {}).get(ckey) or []):
                    for j, env in enumerate(container.get("env") or []):
                        if SECRET_NAME.search(str(env.get("name"))) and "value" in env:
                            problems.append(
                                Problem(
                                    at(doc, *path, "spec", ckey, i, "env", j),
                                    "secret-like variable with a literal value",
                                )
                            )
    return problems


def _strings(node: Any, path: tuple) -> Iterator[tuple[tuple, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, path + (i,))


def check_labels(docs: list[dict]) -> list[Problem]:
    problems = []
    for doc in docs:
        labels = (doc.get("metadata") or {}).get("labels") or {}
        if labels.get("app.kubernetes.io/part-of") != PART_OF:
            problems.append(Problem(at(doc, "metadata", "labels"), f"app.kubernetes.io/part-of must be {PART_OF!r}"))
        if labels.get("app.kubernetes.io/component") not in COMPONENTS:
            problems.append(
                Problem(at(doc, "metadata", "labels"), f"app.kubernetes.io/component must be one of {COMPONENTS}")
            )
    return problems


def check_references(docs: list[dict]) -> list[Problem]:
    """Mounted PVCs and (non-optional) ConfigMaps exist among the manifests, in the pod's namespace."""
    problems = []
    for doc in docs:
        for path, template in pod_templates(doc):
            for i, volume in enumerate((template.get("spec") or {}).get("volumes") or []):
                where = at(doc, *path, "spec", "volumes", i)
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim and find(docs, "PersistentVolumeClaim", claim, namespace_of(doc)) is None:
                    problems.append(Problem(where, f"PersistentVolumeClaim {claim!r} is not in the manifests"))
                name = (volume.get("configMap") or {}).get("name")
                optional = (volume.get("configMap") or {}).get("optional")
                if name and not optional and find(docs, "ConfigMap", name, namespace_of(doc)) is None:
                    problems.append(Problem(where, f"ConfigMap {name!r} is not in the manifests"))
    return problems
