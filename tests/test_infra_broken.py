"""Deliberately broken copies of the manifests must fail validation, each with a message naming the resource
and the field: a misspelled field, a string where an integer belongs, a GPU group without GPU limits (the
issue's three), and a break for every cross-check."""

from __future__ import annotations

import copy
import shutil

import pytest

from infra.validation import BASE, OVERLAYS, kustomization_resources, read_repo_facts, render, validate_documents
from infra.validation.schemas import validate_against_crd
from tests.conftest import reference_file

FACTS = read_repo_facts()
BASE_DOCS = kustomization_resources(BASE)
JOB = "RayJob/puzzle-ray-workflow"


def base_rayjob() -> dict:
    return copy.deepcopy(next(d for d in BASE_DOCS if d["kind"] == "RayJob"))


def problems_of(docs: list[dict], complete: bool = False) -> list[str]:
    return [str(p) for p in validate_documents(docs, FACTS, image_uid=1000, complete=complete)]


def test_the_unbroken_rayjob_is_clean():
    """Baseline: every failure below comes from the break alone."""
    assert problems_of([base_rayjob()]) == []


def test_misspelled_field_fails():
    job = base_rayjob()
    job["spec"]["shutdownAfterJobFinish"] = job["spec"].pop("shutdownAfterJobFinishes")
    found = problems_of([job])
    assert (
        f"{JOB} spec: infra/schemas: Additional properties are not allowed ('shutdownAfterJobFinish' was unexpected)"
        in found
    )


def test_misspelled_worker_group_field_fails():
    job = base_rayjob()
    group = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    group["maxReplica"] = group.pop("maxReplicas")
    found = problems_of([job])
    assert any(
        p.startswith(f"{JOB} spec.rayClusterSpec.workerGroupSpecs[0]: ") and "'maxReplica' was unexpected" in p
        for p in found
    ), found


def test_misspelled_pod_template_field_fails():
    job = base_rayjob()
    container = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    container["volumeMount"] = container.pop("volumeMounts")
    found = problems_of([job])
    where = f"{JOB} spec.rayClusterSpec.headGroupSpec.template.spec.containers[0]"
    assert any(p.startswith(where) and "'volumeMount' was unexpected" in p for p in found), found


@pytest.mark.parametrize(
    "path, field",
    [(("workerGroupSpecs", 0), "maxReplicas"), ((), "ttlSecondsAfterFinished")],
    ids=["maxReplicas", "ttlSecondsAfterFinished"],
)
def test_string_where_an_integer_belongs_fails(path, field):
    job = base_rayjob()
    node = job["spec"]["rayClusterSpec"] if path else job["spec"]
    for key in path:
        node = node[key]
    node[field] = str(node[field])
    found = problems_of([job])
    assert any(f".{field}: infra/schemas: '{node[field]}' is not of type 'integer'" in p for p in found), found


def test_gpu_group_without_gpu_limits_fails():
    job = base_rayjob()
    resources = job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["resources"]
    del resources["limits"]["nvidia.com/gpu"], resources["requests"]["nvidia.com/gpu"]
    found = problems_of([job])
    where = f"{JOB} spec.rayClusterSpec.workerGroupSpecs[0].template.spec.containers[0].resources.limits"
    assert f"{where}: GPU group 'gpu-workers' has no positive integer nvidia.com/gpu limit" in found


def test_broken_copies_also_fail_kuberay_crds():
    crd_dir = reference_file("kuberay-v1.7.0-crds", "ray.io_rayjobs.yaml").parent
    misspelled, mistyped = base_rayjob(), base_rayjob()
    misspelled["spec"]["shutdownAfterJobFinish"] = misspelled["spec"].pop("shutdownAfterJobFinishes")
    mistyped["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["maxReplicas"] = "4"
    assert any("'shutdownAfterJobFinish' was unexpected" in str(p) for p in validate_against_crd(misspelled, crd_dir))
    assert any("'4' is not of type 'integer'" in str(p) for p in validate_against_crd(mistyped, crd_dir))


# --- every cross-check catches its break, on a rendered overlay --------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not on PATH")
    return {name: render(OVERLAYS / name) for name in ("local", "gpu-cluster")}


def one(docs: list[dict], kind: str, name: str | None = None) -> dict:
    return next(d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name))


def job_cluster(docs):
    return one(docs, "RayJob")["spec"]["rayClusterSpec"]


def head(cluster):
    return cluster["headGroupSpec"]["template"]["spec"]


def worker(cluster):
    return cluster["workerGroupSpecs"][0]["template"]["spec"]


def mlflow(docs):
    return one(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]


def set_env(container, name, **entry):
    container["env"] = [e for e in container.get("env", []) if e["name"] != name] + [{"name": name, **entry}]


def drop_env(container, name):
    container["env"] = [e for e in container["env"] if e["name"] != name]


def set_runtime_env(docs, old, new):
    spec = one(docs, "RayJob")["spec"]
    spec["runtimeEnvYAML"] = spec["runtimeEnvYAML"].replace(old, new)


BREAKS = {
    "store missing from runtimeEnvYAML": (
        "local",
        lambda d: set_runtime_env(d, "PUZZLE_RAY_STORE", "PUZZLE_RAY_STOR"),
        "missing PUZZLE_RAY_STORE",
    ),
    "runtimeEnvYAML not YAML": (
        "local",
        lambda d: one(d, "RayJob")["spec"].update(runtimeEnvYAML="env_vars: ["),
        "not valid YAML",
    ),
    "runtime env value not a string": (
        "local",
        lambda d: set_runtime_env(d, 'HF_HUB_OFFLINE: "1"', "HF_HUB_OFFLINE: 1"),
        "must be strings",
    ),
    "tracking URI to no Service": (
        "local",
        lambda d: set_runtime_env(d, "http://mlflow:5000", "http://mlflw:5000"),
        "no Service 'mlflw'",
    ),
    "tracking URI to a closed port": ("local", lambda d: set_runtime_env(d, "mlflow:5000", "mlflow:8080"), "not 8080"),
    "store not on a PVC of every pod": (
        "local",
        lambda d: worker(job_cluster(d))["containers"][0]["volumeMounts"].pop(),
        "not on a PVC mounted in every Ray pod",
    ),
    "store a relative path": (
        "local",
        lambda d: set_runtime_env(d, "/data/puzzle-runs", "puzzle-runs"),
        "an object-store URL or an absolute path",
    ),
    "entrypoint file not in the ConfigMap": (
        "local",
        lambda d: one(d, "RayJob")["spec"].update(
            entrypoint="python -m puzzle_ray.workflows /etc/puzzle-ray/plan.yaml"
        ),
        "has no key 'plan.yaml'",
    ),
    "entrypoint file not mounted": (
        "local",
        lambda d: one(d, "RayJob")["spec"].update(entrypoint="python -m puzzle_ray.workflows /opt/workflow.yaml"),
        "not under any volumeMount",
    ),
    "entrypoint another program": (
        "local",
        lambda d: one(d, "RayJob")["spec"].update(entrypoint="python train.py"),
        "expected `python -m puzzle_ray.workflows CONFIG`",
    ),
    "workflow not a mapping": (
        "local",
        lambda d: one(d, "ConfigMap")["data"].update({"workflow.yaml": "- a\n- b\n"}),
        "must be a YAML mapping",
    ),
    "ConfigMap missing": ("local", lambda d: d.remove(one(d, "ConfigMap")), "is not in the manifests"),
    "privileged container": (
        "gpu-cluster",
        lambda d: head(job_cluster(d))["containers"][0]["securityContext"].update(privileged=True),
        "privileged containers are not allowed",
    ),
    "privilege escalation allowed": (
        "gpu-cluster",
        lambda d: mlflow(d)["securityContext"].pop("allowPrivilegeEscalation"),
        "allowPrivilegeEscalation: must be false",
    ),
    "capabilities kept": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d))["containers"][0]["securityContext"].pop("capabilities"),
        "must drop ALL",
    ),
    "no memory limit": (
        "gpu-cluster",
        lambda d: mlflow(d)["resources"]["limits"].pop("memory"),
        "resources.limits: missing memory",
    ),
    "submitter without resources": (
        "gpu-cluster",
        lambda d: one(d, "RayJob")["spec"]["submitterPodTemplate"]["spec"]["containers"][0].pop("resources"),
        "submitterPodTemplate.spec.containers[0].resources.requests: missing cpu, memory",
    ),
    "autoscaler without resources": (
        "gpu-cluster",
        lambda d: job_cluster(d)["autoscalerOptions"].pop("resources"),
        "autoscalerOptions.resources.limits: missing cpu, memory",
    ),
    "root user": (
        "gpu-cluster",
        lambda d: head(job_cluster(d))["securityContext"].update(runAsUser=0),
        "runAsUser is 0",
    ),
    "not non-root": (
        "gpu-cluster",
        lambda d: head(job_cluster(d))["securityContext"].pop("runAsNonRoot"),
        "runAsNonRoot is not true",
    ),
    "another user than the image's": (
        "gpu-cluster",
        lambda d: mlflow_pod(d)["securityContext"].update(runAsUser=2000),
        "runAsUser 2000 != the image's USER 1000",
    ),
    "host network": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d)).update(hostNetwork=True),
        "host namespaces are not allowed",
    ),
    "hostPath volume": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d))["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
        "hostPath volumes are not allowed",
    ),
    "allowed hosts miss the Service": (
        "local",
        lambda d: mlflow(d)["args"].__setitem__(-1, "--allowed-hosts=localhost:5000"),
        "does not admit 'mlflow:5000'",
    ),
    "no MLflow Service": ("local", lambda d: d.remove(one(d, "Service", "mlflow")), "no ClusterIP Service selects"),
    "SQLite not on the PVC": (
        "local",
        lambda d: set_env(mlflow(d), "MLFLOW_BACKEND_STORE_URI", value="sqlite:////tmp/mlflow.db"),
        "not on a PersistentVolumeClaim mount",
    ),
    "SQLite with two writers": (
        "local",
        lambda d: set_env(mlflow(d), "MLFLOW_WORKERS", value="2"),
        "one server worker",
    ),
    "SQLite rolling update": (
        "local",
        lambda d: one(d, "Deployment")["spec"].update(strategy={"type": "RollingUpdate"}),
        "strategy Recreate",
    ),
    "no MLflow backend": (
        "gpu-cluster",
        lambda d: drop_env(mlflow(d), "MLFLOW_BACKEND_STORE_URI"),
        "no backend store",
    ),
    "no artifact destination": (
        "gpu-cluster",
        lambda d: drop_env(mlflow(d), "MLFLOW_ARTIFACTS_DESTINATION"),
        "no artifact destination",
    ),
    "database password inline": (
        "gpu-cluster",
        lambda d: set_env(mlflow(d), "MLFLOW_BACKEND_STORE_URI", value="postgresql://mlflow:hunter2@db:5432/mlflow"),
        "embeds a password",
    ),
    "Secret committed": (
        "gpu-cluster",
        lambda d: d.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": "s",
                    "namespace": "puzzle-ray",
                    "labels": {"app.kubernetes.io/part-of": "puzzle-ray", "app.kubernetes.io/component": "shared"},
                },
                "stringData": {"a": "b"},
            }
        ),
        "never committed",
    ),
    "secret-like literal env": (
        "gpu-cluster",
        lambda d: set_env(head(job_cluster(d))["containers"][0], "HF_TOKEN", value="hf_abc"),
        "secret-like variable with a literal value",
    ),
    "GPU pod on the CPU image": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d))["containers"][0].update(
            image="registry.example.com/puzzle-ray:0.1.0-ray2.60.0-py311-cpu"
        ),
        "runs the CPU build",
    ),
    "image tag off the Ray pin": (
        "gpu-cluster",
        lambda d: mlflow(d).update(image="registry.example.com/puzzle-ray:0.1.0-ray2.59.0-py311-cu128"),
        "does not match",
    ),
    "foreign image": (
        "gpu-cluster",
        lambda d: mlflow(d).update(image="ghcr.io/mlflow/mlflow:v3.17.2"),
        "is not the puzzle-ray image",
    ),
    "rayVersion off the pin": (
        "gpu-cluster",
        lambda d: job_cluster(d).update(rayVersion="2.59.0"),
        "'2.59.0' != constraints.txt ray==2.60.0",
    ),
    "autoscaling off": (
        "gpu-cluster",
        lambda d: job_cluster(d).update(enableInTreeAutoscaling=False),
        "enableInTreeAutoscaling: must be true",
    ),
    "replicas outside bounds": (
        "gpu-cluster",
        lambda d: job_cluster(d)["workerGroupSpecs"][0].update(minReplicas=3),
        "need 0 <= minReplicas (3)",
    ),
    "GPU group without toleration": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d)).pop("tolerations"),
        "does not tolerate nvidia.com/gpu",
    ),
    "GPU group without node selector": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d)).pop("nodeSelector"),
        "selects no accelerator type",
    ),
    "GPU request != limit": (
        "gpu-cluster",
        lambda d: worker(job_cluster(d))["containers"][0]["resources"]["requests"].update({"nvidia.com/gpu": 4}),
        "request 4 != limit 8",
    ),
    "interactive env differs": (
        "gpu-cluster",
        lambda d: set_env(
            head(one(d, "RayCluster")["spec"])["containers"][0], "PUZZLE_RAY_STORE", value="s3://elsewhere/runs"
        ),
        "differs from the RayJob's runtimeEnvYAML",
    ),
    "interactive shape differs": (
        "gpu-cluster",
        lambda d: worker(one(d, "RayCluster")["spec"])["containers"][0]["resources"]["limits"].update(cpu="8"),
        "cluster shape",
    ),
    "PVC missing": (
        "gpu-cluster",
        lambda d: d.remove(one(d, "PersistentVolumeClaim", "puzzle-ray-models")),
        "PersistentVolumeClaim 'puzzle-ray-models' is not in the manifests",
    ),
    "component label missing": (
        "local",
        lambda d: one(d, "Service")["metadata"]["labels"].pop("app.kubernetes.io/component"),
        "app.kubernetes.io/component must be one of",
    ),
}


def mlflow_pod(docs):
    return one(docs, "Deployment", "mlflow")["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay, breaks, expected", BREAKS.values(), ids=BREAKS.keys())
def test_cross_check_catches(rendered, overlay, breaks, expected):
    docs = copy.deepcopy(rendered[overlay])
    breaks(docs)
    found = problems_of(docs, complete=True)
    assert any(expected in p for p in found), found


def test_a_writable_root_filesystem_or_a_missing_tmp_volume_fails():
    job = base_rayjob()
    head_container = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    head_container["securityContext"]["readOnlyRootFilesystem"] = False
    submitter = job["spec"]["submitterPodTemplate"]["spec"]["containers"][0]
    submitter["volumeMounts"] = [m for m in submitter["volumeMounts"] if m["mountPath"] != "/tmp"]
    job["spec"]["rayClusterSpec"]["autoscalerOptions"].pop("volumeMounts")
    found = problems_of([job])
    where = f"{JOB} spec.rayClusterSpec.headGroupSpec.template.spec.containers[0]"
    assert f"{where}.securityContext.readOnlyRootFilesystem: must be true" in found, found
    assert f"{JOB} spec.submitterPodTemplate.spec.containers[0].volumeMounts: no writable /tmp: mount an emptyDir " \
           "volume there" in found, found
    assert any(p.startswith(f"{JOB} spec.rayClusterSpec.autoscalerOptions") and "no writable /tmp" in p
               for p in found), found


def test_the_mlflow_server_needs_a_network_policy_that_admits_only_its_clients():
    def mlflow_problems(docs):
        return [p for p in problems_of(docs, complete=True)
                if "no NetworkPolicy limits" in p or "admits every pod" in p]

    docs = copy.deepcopy(BASE_DOCS)
    assert mlflow_problems(docs) == []
    open_policy = copy.deepcopy(docs)
    one(open_policy, "NetworkPolicy")["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}})
    assert any("NetworkPolicy/mlflow-clients spec.ingress[0]" in p and "admits every pod of the cluster" in p
               for p in mlflow_problems(open_policy))
    without = [d for d in docs if d["kind"] != "NetworkPolicy"]
    assert any("no NetworkPolicy limits who reaches this MLflow server" in p for p in mlflow_problems(without))
