"""All checks together: what `python -m infra.validation` and tests/test_infra_*.py run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .dockerfile import check_dockerfile, final_user, parse_dockerfile
from .hygiene import check_labels, check_no_secrets, check_references
from .images import check_images
from .manifests import KubectlNotFound, containers, kustomization_resources, parse_problems, pod_templates, render
from .mlflow import check_mlflow_servers
from .problem import Problem, at
from .ray import check_cluster_consistency, check_entrypoint_config, check_runtime_env, check_worker_groups
from .repo import BASE, CRD_DIR, DOCKERFILE, OVERLAYS, ROOT, RepoFacts, check_repo_facts, read_repo_facts
from .schemas import validate_against_crd, validate_builtin, validate_project_schema
from .security import check_pod_security
from .workflows import check_workflow_copies, workflow_copies


def schema_problems(docs: list[dict], crd_dir: Path | None = None) -> list[Problem]:
    """Kubernetes' schemas (built-in kinds and every pod template), infra/schemas for RayJob/RayCluster, and
    KubeRay's CRDs when crd_dir exists."""
    problems = []
    for doc in docs:
        problems += validate_builtin(doc) + validate_project_schema(doc)
        if crd_dir is not None and crd_dir.is_dir():
            problems += validate_against_crd(doc, crd_dir)
    return problems


def check_run_as_user(docs: list[dict], uid: int) -> list[Problem]:
    """Pods run as the image's own user (the Dockerfile's USER), whose files the image owns."""
    problems = []
    for doc in docs:
        for path, template in pod_templates(doc):
            pod_user = ((template.get("spec") or {}).get("securityContext") or {}).get("runAsUser")
            for cpath, container in containers(template):
                user = (container.get("securityContext") or {}).get("runAsUser", pod_user)
                if user != uid:
                    problems.append(Problem(at(doc, *path, *cpath), f"runAsUser {user} != the image's USER {uid}"))
    return problems


def cross_check(
    docs: list[dict], facts: RepoFacts, *, image_uid: int | None = None, complete: bool = True
) -> list[Problem]:
    """The project's rules across manifests. complete=False (a kustomize base) skips what needs the overlay's
    parts: the workflow ConfigMap, PVCs, the MLflow backend, labels set by the overlay's kustomization."""
    problems = check_images(docs, facts) + check_pod_security(docs) + check_worker_groups(docs) + check_no_secrets(docs)
    if image_uid is not None:
        problems += check_run_as_user(docs, image_uid)
    if complete:
        problems += check_entrypoint_config(docs) + check_runtime_env(docs) + check_cluster_consistency(docs)
        problems += check_mlflow_servers(docs) + check_labels(docs) + check_references(docs)
    return problems


def validate_documents(
    docs: list[dict],
    facts: RepoFacts,
    *,
    crd_dir: Path | None = None,
    image_uid: int | None = None,
    complete: bool = True,
) -> list[Problem]:
    return schema_problems(docs, crd_dir) + cross_check(docs, facts, image_uid=image_uid, complete=complete)


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was validated
    skipped: list[str] = field(default_factory=list)  # what could not be, and why


def image_uid(dockerfile_path: Path = DOCKERFILE) -> int | None:
    user = final_user(parse_dockerfile(dockerfile_path))
    uid = (user or "").split(":", 1)[0]
    return int(uid) if uid.isdigit() else None


def validate_repository(root: Path = ROOT, *, crd_dir: Path | None = CRD_DIR, kubectl: str | None = None) -> Report:
    """Every check of infra/: Dockerfile, every YAML file, the base, each overlay as kustomize renders it."""
    report = Report()
    facts = read_repo_facts(root)
    report.problems += check_repo_facts(facts)
    report.problems += check_dockerfile(parse_dockerfile(DOCKERFILE), facts)
    uid = image_uid()
    report.problems += parse_problems(sorted((root / "infra" / "k8s").rglob("*.yaml")))
    overlays = sorted(p for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())
    report.problems += check_workflow_copies(workflow_copies([BASE, *overlays]), root)
    if crd_dir is None or not crd_dir.is_dir():
        report.skipped.append("KubeRay CRD schemas (reference folder absent)")
        crd_dir = None
    report.problems += validate_documents(
        kustomization_resources(BASE), facts, crd_dir=crd_dir, image_uid=uid, complete=False
    )
    report.checked.append("base")
    for overlay in overlays:
        try:
            docs = render(overlay, kubectl)
        except KubectlNotFound:
            report.skipped.append(f"overlay {overlay.name} (kubectl not on PATH)")
            continue
        except RuntimeError as e:
            report.problems.append(Problem(f"overlays/{overlay.name}", str(e)))
            continue
        found = validate_documents(docs, facts, crd_dir=crd_dir, image_uid=uid)
        report.problems += [Problem(f"overlays/{overlay.name} {p.where}", p.message) for p in found]
        report.checked.append(f"overlay {overlay.name}")
    return report
