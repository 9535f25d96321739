"""Pod security and resources: every container has CPU/memory requests and limits, runs as non-root, cannot
gain privileges, drops all capabilities and has a read-only root filesystem with /tmp on a volume; no host
namespaces or host paths."""

from __future__ import annotations

from .manifests import containers, pod_templates, ray_cluster_specs
from .problem import Problem, at

_REQUIRED_RESOURCES = ("cpu", "memory")


def check_pod_security(docs: list[dict]) -> list[Problem]:
    problems = []
    for doc in docs:
        for path, template in pod_templates(doc):
            problems += _pod_problems(doc, path, template)
        for path, cluster in ray_cluster_specs(doc):
            # The autoscaler sidecar that KubeRay adds to the head pod takes these from autoscalerOptions.
            options = cluster.get("autoscalerOptions") or {}
            if cluster.get("enableInTreeAutoscaling"):
                where = path + ("autoscalerOptions",)
                problems += _resource_problems(doc, where + ("resources",), options.get("resources"))
                problems += _container_context_problems(
                    doc, where + ("securityContext",), options.get("securityContext") or {}
                )
                head = ((cluster.get("headGroupSpec") or {}).get("template") or {}).get("spec") or {}
                problems += _writable_tmp_problems(doc, where, options.get("volumeMounts"), head.get("volumes"))
    return problems


def _pod_problems(doc: dict, path: tuple, template: dict) -> list[Problem]:
    pod = template.get("spec") or {}
    pod_context = pod.get("securityContext") or {}
    problems = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(Problem(at(doc, *path, "spec", flag), "host namespaces are not allowed"))
    for i, volume in enumerate(pod.get("volumes") or []):
        if "hostPath" in volume:
            problems.append(Problem(at(doc, *path, "spec", "volumes", i), "hostPath volumes are not allowed"))
    if (pod_context.get("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
        problems.append(
            Problem(
                at(doc, *path, "spec", "securityContext", "seccompProfile"), "must be RuntimeDefault (or Localhost)"
            )
        )
    for cpath, container in containers(template):
        where = path + cpath
        context = container.get("securityContext") or {}
        non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if non_root is not True:
            problems.append(Problem(at(doc, *where), "runAsNonRoot is not true (pod or container securityContext)"))
        if context.get("runAsUser", pod_context.get("runAsUser")) == 0:
            problems.append(Problem(at(doc, *where), "runAsUser is 0 (root)"))
        problems += _resource_problems(doc, where + ("resources",), container.get("resources"))
        problems += _container_context_problems(doc, where + ("securityContext",), context)
        problems += _writable_tmp_problems(doc, where, container.get("volumeMounts"), pod.get("volumes"))
    return problems


def _writable_tmp_problems(doc: dict, where: tuple, mounts: list | None, volumes: list | None) -> list[Problem]:
    """With the root filesystem read-only, /tmp must be a volume of the pod (Ray, pip and Python write there)."""
    names = {v.get("name") for v in volumes or []}
    if not any(m.get("mountPath") == "/tmp" and m.get("name") in names for m in mounts or []):
        return [Problem(at(doc, *where, "volumeMounts"), "no writable /tmp: mount an emptyDir volume there")]
    return []


def _resource_problems(doc: dict, where: tuple, resources: dict | None) -> list[Problem]:
    resources = resources or {}
    problems = []
    for kind in ("requests", "limits"):
        missing = [r for r in _REQUIRED_RESOURCES if r not in (resources.get(kind) or {})]
        if missing:
            problems.append(Problem(at(doc, *where, kind), f"missing {', '.join(missing)}"))
    return problems


def _container_context_problems(doc: dict, where: tuple, context: dict) -> list[Problem]:
    problems = []
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append(Problem(at(doc, *where, "allowPrivilegeEscalation"), "must be false"))
    if context.get("privileged"):
        problems.append(Problem(at(doc, *where, "privileged"), "privileged containers are not allowed"))
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        problems.append(Problem(at(doc, *where, "capabilities", "drop"), "must drop ALL"))
    if capabilities.get("add"):
        problems.append(Problem(at(doc, *where, "capabilities", "add"), "no capabilities may be added"))
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append(Problem(at(doc, *where, "readOnlyRootFilesystem"), "must be true"))
    return problems
