"""infra/README.md's commands name things that exist: the KubeRay version of the reference CRDs, each overlay,
the components its `-l` selectors filter on, the Services it port-forwards, the image tags the overlays run,
and the RayJob's entrypoint."""

from __future__ import annotations

import re

from infra.validation import BASE, CRD_DIR, OVERLAYS, ROOT, kustomization_resources, load_yaml_documents
from infra.validation.hygiene import COMPONENTS

README = (ROOT / "infra" / "README.md").read_text()
COMMANDS = [line for block in re.findall(r"```bash\n(.*?)```", README, re.DOTALL) for line in block.splitlines()]
DOCS = {(d["kind"], d["metadata"]["name"]): d for d in kustomization_resources(BASE)}


def commands_with(*words: str) -> list[str]:
    return [c for c in COMMANDS if all(w in c for w in words)]


def test_operator_version_is_the_kuberay_of_the_reference_crds():
    [install] = commands_with("helm install", "kuberay/kuberay-operator")
    version = re.search(r"--version (\S+)", install).group(1)
    assert f"kuberay-v{version}-crds" == CRD_DIR.name


def test_every_overlay_is_applied_and_exists():
    applied = {re.search(r"-k (\S+)", c).group(1) for c in commands_with("kubectl apply -k")}
    overlays = {f"infra/k8s/overlays/{p.name}" for p in OVERLAYS.iterdir() if (p / "kustomization.yaml").is_file()}
    assert overlays <= applied
    assert all((ROOT / path / "kustomization.yaml").is_file() for path in applied)


def test_label_selectors_name_real_components():
    selected = re.findall(r"app\.kubernetes\.io/component!?=([\w-]+)", README)
    assert selected and set(selected) <= set(COMPONENTS)


def test_port_forwards_and_logs_reach_real_objects():
    job, cluster = DOCS[("RayJob", "puzzle-ray-workflow")], DOCS[("RayCluster", "puzzle-ray")]
    services = {re.search(r"svc/(\S+)", c).group(1) for c in commands_with("port-forward")}
    # KubeRay names a head Service <RayJob or RayCluster name>-head-svc.
    assert services == {"mlflow", f"{job['metadata']['name']}-head-svc", f"{cluster['metadata']['name']}-head-svc"}
    assert ("Service", "mlflow") in DOCS
    assert commands_with(f"logs -f job/{job['metadata']['name']}")
    # KubeRay writes a cluster's token to a Secret named after the cluster.
    assert commands_with(f"get secret {cluster['metadata']['name']} ", "auth_token")


def test_ray_job_submit_uses_token_auth_and_the_rayjob_entrypoint():
    entrypoint = DOCS[("RayJob", "puzzle-ray-workflow")]["spec"]["entrypoint"]
    assert commands_with("export RAY_AUTH_MODE=token") and commands_with("export RAY_AUTH_TOKEN=")
    assert commands_with("ray job submit --address http://localhost:8265 -- " + entrypoint)
    assert commands_with("port-forward", "8265:8265")


def test_docker_builds_produce_the_images_the_overlays_run():
    built = {re.search(r"-t (\S+)", c).group(1) for c in commands_with("docker build")}
    expected = set()
    for overlay in ("local", "gpu-cluster"):
        [image] = load_yaml_documents(OVERLAYS / overlay / "kustomization.yaml")[0]["images"]
        expected.add(f"{image.get('newName', image['name'])}:{image['newTag']}")
    assert built == expected
    assert all(("RAY_PLATFORM=cpu" in c) == c.rstrip(" .").endswith("-cpu") for c in commands_with("docker build"))
