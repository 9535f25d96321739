"""Offline validation of puzzle-ray's deployment (no cluster, no Docker engine): infra/docker/Dockerfile,
infra/k8s (base and overlays as `kubectl kustomize` renders them), against Kubernetes' schemas, the project's
strict KubeRay schemas (infra/schemas), KubeRay's CRDs when present, and the project's cross-checks.

    python -m infra.validation                   # everything; exit status 1 on any problem
    python -m infra.validation --sync-workflows  # copy workflows/*.yaml over the overlays' copies first
"""

from .dockerfile import check_dockerfile, parse_dockerfile, pip_installs
from .manifests import KubectlNotFound, kustomization_resources, load_yaml_documents, render
from .problem import Problem
from .repo import BASE, CRD_DIR, DOCKERFILE, OVERLAYS, ROOT, RepoFacts, read_repo_facts
from .suite import Report, cross_check, schema_problems, validate_documents, validate_repository
from .workflows import check_workflow_copies, sync_workflow_copies, workflow_copies

__all__ = [
    "BASE",
    "CRD_DIR",
    "DOCKERFILE",
    "OVERLAYS",
    "ROOT",
    "KubectlNotFound",
    "Problem",
    "RepoFacts",
    "Report",
    "check_dockerfile",
    "check_workflow_copies",
    "cross_check",
    "kustomization_resources",
    "load_yaml_documents",
    "parse_dockerfile",
    "pip_installs",
    "read_repo_facts",
    "render",
    "schema_problems",
    "sync_workflow_copies",
    "validate_documents",
    "validate_repository",
    "workflow_copies",
]
