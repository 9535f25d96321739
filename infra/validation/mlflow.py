"""MLflow tracking-server cross-checks: a ClusterIP Service selects it, `--allowed-hosts` admits that Service's
name, a NetworkPolicy limits who reaches it (the server has no authentication), the backend and artifact
destination persist (a PVC or an external store) and credentials come from a Secret, and SQLite runs as a single
writer."""

from __future__ import annotations

import fnmatch
import posixpath

from .hygiene import CREDENTIAL_URL
from .manifests import namespace_of
from .problem import Problem, at


def server_options(container: dict) -> dict[str, object]:
    """`--name value` / `--name=value` of `mlflow server`, plus the MLFLOW_* environment variables the CLI
    reads for the same options (an env entry with valueFrom maps to its valueFrom)."""
    options: dict[str, object] = {}
    args = [str(a) for a in container.get("args") or []]
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            options[name] = (
                value if eq else (args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else True)
            )
    for env in container.get("env") or []:
        option = _ENV_OPTIONS.get(env.get("name"))
        if option and option not in options:
            options[option] = env["value"] if "value" in env else env.get("valueFrom")
    return options


_ENV_OPTIONS = {
    "MLFLOW_BACKEND_STORE_URI": "backend-store-uri",
    "MLFLOW_ARTIFACTS_DESTINATION": "artifacts-destination",
    "MLFLOW_SERVER_ALLOWED_HOSTS": "allowed-hosts",
    "MLFLOW_WORKERS": "workers",
}


def is_mlflow_server(container: dict) -> bool:
    argv = [str(a) for a in (container.get("command") or []) + (container.get("args") or [])]
    return len(argv) >= 2 and posixpath.basename(argv[0]) == "mlflow" and argv[1] == "server"


def check_mlflow_servers(docs: list[dict]) -> list[Problem]:
    problems = []
    for doc in docs:
        if doc.get("kind") != "Deployment":
            continue
        template = (doc.get("spec") or {}).get("template") or {}
        for i, container in enumerate((template.get("spec") or {}).get("containers") or []):
            if is_mlflow_server(container):
                problems += _server_problems(
                    docs, doc, template, ("spec", "template", "spec", "containers", i), container
                )
    return problems


def _server_problems(docs: list[dict], doc: dict, template: dict, path: tuple, container: dict) -> list[Problem]:
    where = at(doc, *path)
    options = server_options(container)
    problems = []
    service = _selecting_service(docs, doc, template)
    if service is None:
        problems.append(Problem(where, "no ClusterIP Service selects this MLflow server's pods"))
    else:
        allowed = str(options.get("allowed-hosts") or "")
        patterns = [h.strip() for h in allowed.split(",") if h.strip()]
        name, namespace = service["metadata"]["name"], namespace_of(service)
        for port in [p.get("port") for p in service["spec"].get("ports") or []]:
            hosts = [f"{name}:{port}"] + ([f"{name}.{namespace}.svc.cluster.local:{port}"] if namespace else [])
            for host in hosts:
                if not any(fnmatch.fnmatch(host, p) if "*" in p else host == p for p in patterns):
                    problems.append(Problem(where, f"--allowed-hosts does not admit {host!r} (Service {name})"))
    problems += _network_policy_problems(docs, doc, template, where)
    backend = options.get("backend-store-uri")
    if backend is None:
        problems.append(
            Problem(
                where,
                "no backend store (--backend-store-uri / MLFLOW_BACKEND_STORE_URI): "
                "MLflow would use sqlite:///mlflow.db in the container, lost on restart",
            )
        )
    elif isinstance(backend, str):
        if backend.startswith("sqlite:///"):
            problems += _on_pvc_problems(where, template, container, backend[len("sqlite:///") :], "SQLite database")
            problems += _single_writer_problems(doc, where, options)
        elif CREDENTIAL_URL.search(backend):
            problems.append(Problem(where, "the backend URI embeds a password: take it from a Secret (secretKeyRef)"))
    elif "secretKeyRef" not in backend:
        problems.append(Problem(where, "the backend store URI must come from a Secret (valueFrom.secretKeyRef)"))
    destination = options.get("artifacts-destination")
    if not isinstance(destination, str):
        problems.append(
            Problem(where, "no artifact destination (--artifacts-destination / MLFLOW_ARTIFACTS_DESTINATION)")
        )
    elif destination.startswith("/"):
        problems += _on_pvc_problems(where, template, container, destination, "artifact destination")
    elif "://" not in destination:
        problems.append(Problem(where, f"artifact destination {destination!r}: an absolute path on a PVC or a URL"))
    return problems


def _selecting_service(docs: list[dict], doc: dict, template: dict) -> dict | None:
    labels = (template.get("metadata") or {}).get("labels") or {}
    for service in docs:
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        if (
            service.get("kind") == "Service"
            and namespace_of(service) == namespace_of(doc)
            and spec.get("type", "ClusterIP") == "ClusterIP"
            and selector
            and all(labels.get(k) == v for k, v in selector.items())
        ):
            return service
    return None


def _network_policy_problems(docs: list[dict], doc: dict, template: dict, where: str) -> list[Problem]:
    """An Ingress NetworkPolicy of the server's namespace selects its pods, and none of its rules admits every
    source (a rule without `from`, or an empty namespace selector: the whole cluster)."""
    labels = (template.get("metadata") or {}).get("labels") or {}
    policies = []
    for policy in docs:
        spec = policy.get("spec") or {}
        selector = (spec.get("podSelector") or {}).get("matchLabels") or {}
        if (policy.get("kind") == "NetworkPolicy" and namespace_of(policy) == namespace_of(doc)
                and "Ingress" in (spec.get("policyTypes") or ["Ingress"])
                and all(labels.get(k) == v for k, v in selector.items())):
            policies.append(policy)
    if not policies:
        return [Problem(where, "no NetworkPolicy limits who reaches this MLflow server (it has no authentication)")]
    problems = []
    for policy in policies:
        for i, rule in enumerate(policy["spec"].get("ingress") or []):
            sources = rule.get("from")
            if not sources or any(s.get("namespaceSelector") == {} or s == {} for s in sources):
                problems.append(Problem(at(policy, "spec", "ingress", i), "admits every pod of the cluster"))
    return problems


def _on_pvc_problems(where: str, template: dict, container: dict, path: str, what: str) -> list[Problem]:
    pvcs = {v.get("name") for v in (template.get("spec") or {}).get("volumes") or [] if "persistentVolumeClaim" in v}
    for mount in container.get("volumeMounts") or []:
        mount_path = mount.get("mountPath", "")
        if mount.get("name") in pvcs and posixpath.commonpath([mount_path, path]) == mount_path:
            return []
    return [Problem(where, f"{what} {path} is not on a PersistentVolumeClaim mount: lost when the pod restarts")]


def _single_writer_problems(doc: dict, where: str, options: dict) -> list[Problem]:
    spec = doc.get("spec") or {}
    problems = []
    if spec.get("replicas", 1) != 1 or (spec.get("strategy") or {}).get("type") != "Recreate":
        problems.append(Problem(at(doc, "spec"), "SQLite backend: replicas must be 1 with strategy Recreate"))
    if str(options.get("workers")) != "1":
        problems.append(Problem(where, "SQLite backend: one server worker (--workers 1 / MLFLOW_WORKERS=1)"))
    return problems
