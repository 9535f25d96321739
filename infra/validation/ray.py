"""Ray cross-checks: the RayJob's entrypoint finds its workflow file in a mounted ConfigMap, GPU groups ask for
GPUs where the GPUs are, the driver's environment names the MLflow Service and a store every Ray pod shares,
and the interactive RayCluster matches the RayJob's cluster."""

from __future__ import annotations

import posixpath
import shlex
from urllib.parse import urlparse

import yaml

from .manifests import find, namespace_of, ray_cluster_specs, ray_container, worker_groups
from .problem import Problem, at

ENTRYPOINT_MODULE = "puzzle_ray.workflows"
REQUIRED_ENV = ("MLFLOW_TRACKING_URI", "PUZZLE_RAY_STORE")
GPU = "nvidia.com/gpu"


# --- entrypoint -> ConfigMap -------------------------------------------------------------------------------


def check_entrypoint_config(docs: list[dict]) -> list[Problem]:
    """`python -m puzzle_ray.workflows CONFIG`: CONFIG lies in a ConfigMap volume mounted in the head's Ray
    container (the driver runs on the head), that ConfigMap exists, and the file parses as a YAML mapping."""
    problems = []
    for doc in docs:
        if doc.get("kind") != "RayJob":
            continue
        where = at(doc, "spec", "entrypoint")
        argv = shlex.split(str((doc.get("spec") or {}).get("entrypoint", "")))
        if argv[:3] != ["python", "-m", ENTRYPOINT_MODULE] or len(argv) < 4:
            problems.append(Problem(where, f"expected `python -m {ENTRYPOINT_MODULE} CONFIG`, got {argv}"))
            continue
        config = argv[3]
        for path, cluster in ray_cluster_specs(doc):
            head = (cluster.get("headGroupSpec") or {}).get("template") or {}
            problems += _config_file_problems(docs, doc, where, config, head)
    return problems


def _config_file_problems(docs: list[dict], doc: dict, where: str, config: str, head: dict) -> list[Problem]:
    volumes = {v.get("name"): v for v in (head.get("spec") or {}).get("volumes") or []}
    for mount in ray_container(head).get("volumeMounts") or []:
        mount_path = mount.get("mountPath", "").rstrip("/")
        if not config.startswith(mount_path + "/"):
            continue
        relative = config[len(mount_path) + 1 :]
        source = (volumes.get(mount.get("name")) or {}).get("configMap")
        if source is None:
            return [Problem(where, f"{config} is on volume {mount.get('name')!r}, which is not a ConfigMap")]
        # A ConfigMap volume shows each key as a file, or only the listed `items` under their paths.
        keys = {item["path"]: item["key"] for item in source.get("items") or []} or None
        key = keys.get(relative) if keys is not None else relative
        config_map = find(docs, "ConfigMap", source.get("name"), namespace_of(doc))
        if config_map is None:
            return [Problem(where, f"ConfigMap {source.get('name')!r} (holding {config}) is not in the manifests")]
        data = config_map.get("data") or {}
        if key not in data:
            return [Problem(where, f"{config}: ConfigMap {source.get('name')!r} has no key {key!r} ({sorted(data)})")]
        try:
            content = yaml.safe_load(data[key])
        except yaml.YAMLError as e:
            return [Problem(at(config_map, "data", key), f"not valid YAML: {e}")]
        if not isinstance(content, dict):
            return [Problem(at(config_map, "data", key), "the workflow config must be a YAML mapping")]
        return []
    return [Problem(where, f"{config} is not under any volumeMount of the head's Ray container")]


# --- GPU worker groups and autoscaling ---------------------------------------------------------------------


def is_gpu_group(group: dict) -> bool:
    """A worker group meant for GPUs: named so, placed on GPU nodes, or asking for GPUs anywhere."""
    pod = (group.get("template") or {}).get("spec") or {}
    resources = ray_container(group.get("template") or {}).get("resources") or {}
    return (
        "gpu" in str(group.get("groupName", "")).lower()
        or any(t.get("key") == GPU for t in pod.get("tolerations") or [])
        or any(k.startswith(GPU) for k in pod.get("nodeSelector") or {})
        or any(GPU in (resources.get(kind) or {}) for kind in ("requests", "limits"))
    )


def check_worker_groups(docs: list[dict]) -> list[Problem]:
    """Autoscaling on with sane bounds; every GPU group has an integer nvidia.com/gpu limit on its Ray container
    (requests, if given, equal to it), tolerates the GPU taint, and selects the accelerator's nodes."""
    problems = []
    for doc in docs:
        for path, cluster in ray_cluster_specs(doc):
            if cluster.get("enableInTreeAutoscaling") is not True:
                problems.append(Problem(at(doc, *path, "enableInTreeAutoscaling"), "must be true"))
            for i, group in worker_groups(cluster):
                where = path + ("workerGroupSpecs", i)
                problems += _bounds_problems(doc, where, group)
                if is_gpu_group(group):
                    problems += _gpu_problems(doc, where, group)
    return problems


def _bounds_problems(doc: dict, where: tuple, group: dict) -> list[Problem]:
    low, start, high = (group.get(k) for k in ("minReplicas", "replicas", "maxReplicas"))
    if not all(isinstance(v, int) for v in (low, start, high)):
        return []  # the schemas report missing or mistyped bounds
    if not (0 <= low <= start <= high) or high < 1:
        return [
            Problem(
                at(doc, *where),
                f"need 0 <= minReplicas ({low}) <= replicas ({start}) <= maxReplicas ({high}), maxReplicas >= 1",
            )
        ]
    return []


def _gpu_problems(doc: dict, where: tuple, group: dict) -> list[Problem]:
    name = group.get("groupName")
    template = group.get("template") or {}
    pod = template.get("spec") or {}
    resources = ray_container(template).get("resources") or {}
    limit = (resources.get("limits") or {}).get(GPU)
    request = (resources.get("requests") or {}).get(GPU)
    problems = []
    rpath = where + ("template", "spec", "containers", 0, "resources")
    if not _positive_int(limit):
        problems.append(Problem(at(doc, *rpath, "limits"), f"GPU group {name!r} has no positive integer {GPU} limit"))
    elif request is not None and str(request) != str(limit):
        problems.append(Problem(at(doc, *rpath, "requests"), f"{GPU} request {request} != limit {limit}"))
    if not any(t.get("key") == GPU for t in pod.get("tolerations") or []):
        problems.append(
            Problem(at(doc, *where, "template", "spec", "tolerations"), f"GPU group {name!r} does not tolerate {GPU}")
        )
    if not pod.get("nodeSelector"):
        problems.append(
            Problem(
                at(doc, *where, "template", "spec", "nodeSelector"), f"GPU group {name!r} selects no accelerator type"
            )
        )
    return problems


def _positive_int(value) -> bool:
    try:
        return int(str(value)) > 0 and str(int(str(value))) == str(value).strip()
    except ValueError:
        return False


# --- environment of the driver and of the interactive cluster ----------------------------------------------


def runtime_env_vars(doc: dict) -> dict:
    """env_vars of a RayJob's runtimeEnvYAML (ValueError when it is not the expected shape)."""
    try:
        runtime_env = yaml.safe_load((doc.get("spec") or {}).get("runtimeEnvYAML") or "")
    except yaml.YAMLError as e:
        raise ValueError(f"not valid YAML: {e}") from e
    if not isinstance(runtime_env, dict) or not isinstance(runtime_env.get("env_vars"), dict):
        raise ValueError("must be a mapping with an `env_vars` mapping")
    env = runtime_env["env_vars"]
    wrong = [k for k, v in env.items() if not isinstance(v, str)]
    if wrong:
        raise ValueError(f"env_vars values must be strings (quote them): {wrong}")
    return env


def check_runtime_env(docs: list[dict]) -> list[Problem]:
    """The RayJob's runtimeEnvYAML parses and sets MLFLOW_TRACKING_URI (an MLflow Service of the manifests)
    and PUZZLE_RAY_STORE (a URL, or a path on a PVC every Ray pod mounts); the interactive RayCluster's Ray
    containers carry the same values."""
    problems, expected = [], None
    for doc in docs:
        if doc.get("kind") != "RayJob":
            continue
        where = at(doc, "spec", "runtimeEnvYAML")
        try:
            env = runtime_env_vars(doc)
        except ValueError as e:
            problems.append(Problem(where, str(e)))
            continue
        problems += _env_problems(docs, doc, where, env)
        expected = {k: env.get(k) for k in REQUIRED_ENV}
    for doc in docs:
        if doc.get("kind") != "RayCluster":
            continue
        for path, cluster in ray_cluster_specs(doc):
            for tpath, template in _group_templates(path, cluster):
                where = at(doc, *tpath, "spec", "containers", 0, "env")
                env = {e.get("name"): e.get("value") for e in ray_container(template).get("env") or []}
                problems += _env_problems(docs, doc, where, env, templates=[template])
                if expected is not None and {k: env.get(k) for k in REQUIRED_ENV} != expected:
                    problems.append(Problem(where, f"differs from the RayJob's runtimeEnvYAML {expected}"))
    return problems


def _group_templates(path: tuple, cluster: dict):
    yield path + ("headGroupSpec", "template"), (cluster.get("headGroupSpec") or {}).get("template") or {}
    for i, group in worker_groups(cluster):
        yield path + ("workerGroupSpecs", i, "template"), group.get("template") or {}


def _env_problems(docs: list[dict], doc: dict, where: str, env: dict, templates: list | None = None) -> list[Problem]:
    missing = [k for k in REQUIRED_ENV if not env.get(k)]
    if missing:
        return [Problem(where, f"missing {', '.join(missing)}")]
    problems = _tracking_uri_problems(docs, doc, where, env["MLFLOW_TRACKING_URI"])
    store = env["PUZZLE_RAY_STORE"]
    if store.startswith("/"):
        if templates is None:  # a RayJob: the store must be shared by every Ray pod of its cluster
            templates = [t for _, cluster in ray_cluster_specs(doc) for _, t in _group_templates((), cluster)]
        for template in templates:
            if not _on_pvc(template, store):
                problems.append(Problem(where, f"PUZZLE_RAY_STORE {store} is not on a PVC mounted in every Ray pod"))
                break
    elif "://" not in store or store.startswith("file://"):
        problems.append(Problem(where, f"PUZZLE_RAY_STORE {store!r}: an object-store URL or an absolute path on a PVC"))
    return problems


def _tracking_uri_problems(docs: list[dict], doc: dict, where: str, uri: str) -> list[Problem]:
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return [Problem(where, f"MLFLOW_TRACKING_URI {uri!r} is not an http(s) URL of the tracking server")]
    name, _, rest = parsed.hostname.partition(".")
    namespace = rest.split(".", 1)[0] if rest else namespace_of(doc)
    service = find(docs, "Service", name, namespace)
    if service is None:
        return [Problem(where, f"MLFLOW_TRACKING_URI {uri!r}: no Service {name!r} in namespace {namespace!r}")]
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    ports = [p.get("port") for p in (service.get("spec") or {}).get("ports") or []]
    if port not in ports:
        return [Problem(where, f"MLFLOW_TRACKING_URI {uri!r}: Service {name!r} exposes ports {ports}, not {port}")]
    return []


def _on_pvc(template: dict, path: str) -> bool:
    pvc_volumes = {
        v.get("name") for v in (template.get("spec") or {}).get("volumes") or [] if "persistentVolumeClaim" in v
    }
    return any(
        m.get("name") in pvc_volumes and posixpath.commonpath([m.get("mountPath", ""), path]) == m.get("mountPath")
        for m in ray_container(template).get("volumeMounts") or []
    )


# --- the interactive cluster matches the batch one ---------------------------------------------------------


def check_cluster_consistency(docs: list[dict]) -> list[Problem]:
    """The RayCluster for interactive work is the RayJob's cluster: same Ray version, head size, worker groups
    (names, sizes, node placement), so that a job tried interactively behaves the same in batch."""
    specs = {doc["kind"]: (doc, cluster) for doc in docs for _, cluster in ray_cluster_specs(doc)}
    if len(specs) < 2:
        return []
    (_, job_cluster), (interactive, cluster) = specs["RayJob"], specs["RayCluster"]
    problems = []
    if _shape(job_cluster) != _shape(cluster):
        problems.append(
            Problem(
                at(interactive, "spec"),
                f"cluster shape {_shape(cluster)} differs from the RayJob's {_shape(job_cluster)}",
            )
        )
    return problems


def _shape(cluster: dict) -> dict:
    def group_shape(template: dict) -> tuple:
        pod = template.get("spec") or {}
        return (ray_container(template).get("resources"), pod.get("nodeSelector"), pod.get("tolerations"))

    return {
        "rayVersion": cluster.get("rayVersion"),
        "head": group_shape((cluster.get("headGroupSpec") or {}).get("template") or {}),
        **{f"group {g.get('groupName')}": group_shape(g.get("template") or {}) for _, g in worker_groups(cluster)},
    }
