"""Schema validation: Kubernetes' own schemas for built-in kinds (kubernetes-validate, strict), the project's
strict KubeRay schemas (infra/schemas/), and KubeRay's CRD schemas when they are present."""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource

from .manifests import RAY_KINDS, load_yaml_documents, pod_templates
from .problem import Problem, at, resource_name
from .repo import SCHEMAS

# The oldest Kubernetes minor the manifests target; kubernetes-validate has the schemas of every minor since
# 1.25 and picks the newest one not newer than this.
KUBERNETES_VERSION = "1.30"

PROJECT_SCHEMA_FILES = {"RayJob": "rayjob.schema.json", "RayCluster": "raycluster.schema.json"}
CRD_FILES = {"RayJob": "ray.io_rayjobs.yaml", "RayCluster": "ray.io_rayclusters.yaml"}


def validate_builtin(doc: dict) -> list[Problem]:
    """A built-in kind against Kubernetes' schema; for RayJob/RayCluster, each pod template wrapped as a
    `kind: PodTemplate` (KubeRay embeds core/v1 PodTemplateSpecs, which its CRD checks only loosely)."""
    if doc.get("kind") in RAY_KINDS:
        problems = []
        for path, template in pod_templates(doc):
            wrapped = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template}
            problems += _kubernetes_validate(wrapped, lambda p, path=path: at(doc, *path, *p[1:]))
        return problems
    return _kubernetes_validate(doc, lambda p: at(doc, *p))


def _kubernetes_validate(doc: dict, where) -> list[Problem]:
    try:
        validator, version = _builtin_validator(str(doc.get("kind")), str(doc.get("apiVersion")))
    except kubernetes_validate.SchemaNotFoundError as e:
        return [Problem(resource_name(doc), e.message)]
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    return [] if error is None else [Problem(where(list(error.path)), f"Kubernetes {version} schema: {error.message}")]


@functools.cache
def _builtin_validator(kind: str, api_version: str) -> tuple[jsonschema.protocols.Validator, str]:
    """kubernetes-validate's strict schema for a kind, compiled once: its validate() re-reads the 1.2 MB
    definitions file on every call (~20 ms), which adds up over a suite of manifests."""
    utils = kubernetes_validate.utils
    version = [v for v in utils.all_versions() if utils.major_minor(v) <= KUBERNETES_VERSION][-1]
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    # rbac.authorization.k8s.io/v1 -> rbac-v1, apps/v1 -> apps-v1, v1 -> v1 (kubernetes-validate's file names)
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"{schema_dir}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        raise kubernetes_validate.SchemaNotFoundError(kind=kind, version=KUBERNETES_VERSION, api_version=api_version)
    definitions = utils.schema_contents(f"{schema_dir}/_definitions.json", version)
    # Both files carry their $id (https://kubernetes.io/api/...), which is how the $refs between them resolve.
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.Draft202012Validator(schema, registry=registry), utils.major_minor(version)


@functools.cache
def _project_registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def project_validator(kind: str) -> jsonschema.protocols.Validator:
    registry = _project_registry()
    schema = registry.contents(PROJECT_SCHEMA_FILES[kind])
    return jsonschema.Draft202012Validator(schema, registry=registry)


def validate_project_schema(doc: dict) -> list[Problem]:
    """RayJob / RayCluster against infra/schemas/: every field the project uses, typed, nothing else."""
    if doc.get("kind") not in PROJECT_SCHEMA_FILES:
        return []
    errors = sorted(project_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [Problem(at(doc, *e.absolute_path), f"infra/schemas: {e.message}") for e in errors]


def strict_crd_schema(schema: Any) -> Any:
    """KubeRay's openAPIV3Schema with `additionalProperties: false` wherever properties are listed (and unknown
    fields are not explicitly preserved). That is what `kubectl apply` does by default since Kubernetes 1.27
    (server-side field validation Strict): an unknown field is an error, not silently pruned."""
    schema = copy.deepcopy(schema)

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema


@functools.cache
def crd_validator(crd_dir: Path, kind: str) -> jsonschema.protocols.Validator:
    crd = load_yaml_documents(crd_dir / CRD_FILES[kind])[0]
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    # OpenAPI v3 schemas are close to JSON Schema draft 4 (no $ref; x-kubernetes-* keywords are ignored).
    return jsonschema.Draft4Validator(strict_crd_schema(version["schema"]["openAPIV3Schema"]))


def validate_against_crd(doc: dict, crd_dir: Path) -> list[Problem]:
    """RayJob / RayCluster against KubeRay's own CRD schema, read in place from crd_dir."""
    if doc.get("kind") not in CRD_FILES or doc.get("apiVersion") != "ray.io/v1":
        return []
    errors = sorted(crd_validator(crd_dir, doc["kind"]).iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    return [Problem(at(doc, *e.absolute_path), f"KubeRay CRD: {e.message}") for e in errors]
