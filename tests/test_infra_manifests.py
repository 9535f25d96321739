"""The Kubernetes manifests (infra/k8s): every file parses, the base and each overlay (as `kubectl kustomize`
renders it) pass Kubernetes' schemas, the project's strict KubeRay schemas, KubeRay's CRDs when present, and
the cross-checks; the overlays differ the way infra/README.md says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from infra.validation import (
    BASE,
    OVERLAYS,
    ROOT,
    check_workflow_copies,
    kustomization_resources,
    load_yaml_documents,
    read_repo_facts,
    render,
    sync_workflow_copies,
    validate_documents,
    validate_repository,
    workflow_copies,
)
from infra.validation.repo import SCHEMAS
from infra.validation.schemas import validate_against_crd
from infra.validation.suite import image_uid
from tests.conftest import reference_file

FACTS = read_repo_facts()
UID = image_uid()
OVERLAY_NAMES = sorted(p.name for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file())
needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not on PATH")


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: render(OVERLAYS / name) for name in OVERLAY_NAMES}


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_overlays_are_local_and_gpu_cluster():
    assert OVERLAY_NAMES == ["gpu-cluster", "local"]


def test_every_yaml_file_parses():
    paths = sorted((ROOT / "infra").rglob("*.yaml"))
    assert len(paths) > 10
    for path in paths:
        assert load_yaml_documents(path), path


def test_project_schemas_are_valid_and_strict():
    """Every object schema that lists properties forbids others: that is what makes a misspelling an error."""

    def loose(node, path=()):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                yield "/".join(map(str, path))
            for key, value in node.items():
                yield from loose(value, path + (key,))

    for path in SCHEMAS.glob("*.schema.json"):
        schema = yaml.safe_load(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        assert list(loose(schema)) == [], path.name


def test_base_passes_schemas_and_cross_checks():
    docs = kustomization_resources(BASE)
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Namespace", "NetworkPolicy", "RayCluster", "RayJob",
                                              "Service"]
    assert [str(p) for p in validate_documents(docs, FACTS, image_uid=UID, complete=False)] == []


def test_base_validates_against_kuberay_crds():
    crd_dir = reference_file("kuberay-v1.7.0-crds", "ray.io_rayjobs.yaml").parent
    for doc in kustomization_resources(BASE):
        assert [str(p) for p in validate_against_crd(doc, crd_dir)] == []


@needs_kubectl
@pytest.mark.parametrize("overlay", OVERLAY_NAMES)
def test_overlay_renders_and_passes_every_check(rendered, overlay):
    docs = rendered[overlay]
    assert {"ConfigMap", "Deployment", "Service", "RayJob", "RayCluster", "PersistentVolumeClaim"} <= {
        d["kind"] for d in docs
    }
    assert [str(p) for p in validate_documents(docs, FACTS, image_uid=UID)] == []


@needs_kubectl
def test_overlays_validate_against_kuberay_crds(rendered):
    crd_dir = reference_file("kuberay-v1.7.0-crds", "ray.io_rayclusters.yaml").parent
    for docs in rendered.values():
        for doc in by_kind(docs, "RayJob") + by_kind(docs, "RayCluster"):
            assert [str(p) for p in validate_against_crd(doc, crd_dir)] == []


@needs_kubectl
def test_local_overlay_needs_no_gpu_and_keeps_state_on_pvcs(rendered):
    docs = rendered["local"]
    assert "nvidia.com/gpu" not in yaml.safe_dump(docs)
    job = by_kind(docs, "RayJob")[0]
    assert "PUZZLE_RAY_STORE: /data/puzzle-runs" in job["spec"]["runtimeEnvYAML"]
    mlflow = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in mlflow["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"] == "sqlite:////mlflow/mlflow.db"
    assert {d["metadata"]["name"] for d in by_kind(docs, "PersistentVolumeClaim")} == {
        "mlflow-data",
        "puzzle-ray-store",
    }
    assert mlflow["image"].endswith("-cpu")


@needs_kubectl
def test_gpu_overlay_runs_8xh100_workers_postgres_and_object_store(rendered):
    docs = rendered["gpu-cluster"]
    for kind in ("RayJob", "RayCluster"):
        doc = by_kind(docs, kind)[0]
        cluster = doc["spec"]["rayClusterSpec"] if kind == "RayJob" else doc["spec"]
        worker = cluster["workerGroupSpecs"][0]["template"]["spec"]
        assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
        assert worker["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert worker["containers"][0]["image"].endswith("-cu128")
    assert "PUZZLE_RAY_STORE: s3://" in by_kind(docs, "RayJob")[0]["spec"]["runtimeEnvYAML"]
    env = {e["name"]: e for e in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "puzzle-ray-mlflow-db",
        "key": "uri",
    }
    assert env["MLFLOW_ARTIFACTS_DESTINATION"]["value"].startswith("s3://")
    assert by_kind(docs, "Secret") == []


def test_workflow_copies_parse_and_match_the_repository():
    copies = workflow_copies([BASE, *(OVERLAYS / n for n in OVERLAY_NAMES)])
    assert sorted((c.kustomization.name, c.key, c.path.name) for c in copies) == [
        ("gpu-cluster", "workflow.yaml", "llama-3.1-70b-8xh100.yaml"),
        ("local", "workflow.yaml", "tiny-cpu.yaml"),
    ]
    assert [str(p) for p in check_workflow_copies(copies, ROOT)] == []


def test_workflow_copy_drift_is_reported_and_synced(tmp_path):
    overlay = tmp_path / "infra" / "k8s" / "overlays" / "local"
    overlay.mkdir(parents=True)
    (tmp_path / "workflows").mkdir()
    shutil.copy(OVERLAYS / "local" / "kustomization.yaml", overlay)
    (overlay / "tiny-cpu.yaml").write_text("parent: embedded\n")
    (tmp_path / "workflows" / "tiny-cpu.yaml").write_text("parent: embedded\nbld: {num_actors: 2}\n")
    copies = workflow_copies([overlay])
    [problem] = check_workflow_copies(copies, tmp_path)
    assert "differs from workflows/tiny-cpu.yaml" in problem.message and "--sync-workflows" in problem.message
    assert sync_workflow_copies(copies, tmp_path) == [overlay / "tiny-cpu.yaml"]
    assert check_workflow_copies(copies, tmp_path) == []
    (overlay / "tiny-cpu.yaml").write_text("- not a mapping\n")
    assert "must be a YAML mapping" in check_workflow_copies(copies, tmp_path)[0].message


@needs_kubectl
def test_validation_command_reports_no_problem():
    """`python -m infra.validation` as infra/README.md runs it (step 0)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "infra.validation"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked: base, overlay gpu-cluster, overlay local" in result.stdout
    assert validate_repository().problems == []
