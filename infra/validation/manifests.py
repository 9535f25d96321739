"""Reading manifests: YAML files, kustomize renders, and the pod templates and Ray cluster specs inside them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .problem import Problem

# PyYAML's C loader when built with libyaml: KubeRay's CRDs are MBs of YAML.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

RAY_KINDS = ("RayJob", "RayCluster")


class KubectlNotFound(RuntimeError):
    """`kubectl kustomize` renders the overlays; without kubectl only the base files can be checked."""


def load_yaml_documents(path: Path) -> list[Any]:
    """Every document of a YAML file (empty documents dropped). Raises yaml.YAMLError naming the file."""
    with open(path) as f:
        try:
            return [d for d in yaml.load_all(f, Loader=_Loader) if d is not None]
        except yaml.YAMLError as e:
            raise yaml.YAMLError(f"{path}: {e}") from e


def parse_problems(paths: list[Path]) -> list[Problem]:
    """One Problem per file that is not valid YAML."""
    problems = []
    for path in paths:
        try:
            load_yaml_documents(path)
        except yaml.YAMLError as e:
            problems.append(Problem(str(path), f"not valid YAML: {e}"))
    return problems


def kustomization_resources(directory: Path) -> list[dict]:
    """The manifests a kustomization lists under `resources:` that are plain files (no kubectl needed)."""
    kustomization = load_yaml_documents(directory / "kustomization.yaml")[0]
    docs = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_file():
            docs.extend(load_yaml_documents(path))
    return docs


def render(directory: Path, kubectl: str | None = None) -> list[dict]:
    """`kubectl kustomize DIRECTORY` as a list of manifests. Raises KubectlNotFound, or RuntimeError with
    kustomize's own message when the overlay does not build."""
    kubectl = kubectl or shutil.which("kubectl")
    if kubectl is None:
        raise KubectlNotFound("kubectl is not on PATH")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed: {result.stderr.strip()}")
    return [d for d in yaml.load_all(result.stdout, Loader=_Loader) if d is not None]


def ray_cluster_specs(doc: dict) -> Iterator[tuple[tuple, dict]]:
    """(path, spec) of the RayClusterSpec inside a RayJob or RayCluster."""
    spec = doc.get("spec") or {}
    if doc.get("kind") == "RayJob" and isinstance(spec.get("rayClusterSpec"), dict):
        yield ("spec", "rayClusterSpec"), spec["rayClusterSpec"]
    elif doc.get("kind") == "RayCluster" and isinstance(spec, dict):
        yield ("spec",), spec


def worker_groups(cluster: dict) -> Iterator[tuple[int, dict]]:
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        if isinstance(group, dict):
            yield i, group


def pod_templates(doc: dict) -> Iterator[tuple[tuple, dict]]:
    """(path, template) of every pod template in a manifest: workload kinds, Ray head/worker groups, the
    RayJob's submitter."""
    spec = doc.get("spec") or {}
    workload = doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet")
    if workload and isinstance(spec.get("template"), dict):
        yield ("spec", "template"), spec["template"]
    for path, cluster in ray_cluster_specs(doc):
        head = cluster.get("headGroupSpec") or {}
        if isinstance(head.get("template"), dict):
            yield path + ("headGroupSpec", "template"), head["template"]
        for i, group in worker_groups(cluster):
            if isinstance(group.get("template"), dict):
                yield path + ("workerGroupSpecs", i, "template"), group["template"]
    if doc.get("kind") == "RayJob" and isinstance(spec.get("submitterPodTemplate"), dict):
        yield ("spec", "submitterPodTemplate"), spec["submitterPodTemplate"]


def containers(template: dict) -> Iterator[tuple[tuple, dict]]:
    """(path relative to the template, container) for containers and initContainers."""
    pod = template.get("spec") or {}
    for key in ("initContainers", "containers"):
        for i, container in enumerate(pod.get(key) or []):
            if isinstance(container, dict):
                yield ("spec", key, i), container


def ray_container(template: dict) -> dict:
    """KubeRay runs Ray in the first container of a group's pod template."""
    found = (template.get("spec") or {}).get("containers") or [{}]
    return found[0] if isinstance(found[0], dict) else {}


def find(docs: list[dict], kind: str, name: str, namespace: str | None = None) -> dict | None:
    for doc in docs:
        meta = doc.get("metadata") or {}
        if doc.get("kind") == kind and meta.get("name") == name and meta.get("namespace") == namespace:
            return doc
    return None


def namespace_of(doc: dict) -> str | None:
    return (doc.get("metadata") or {}).get("namespace")
