"""Connect to Ray: an existing cluster (RAY_ADDRESS, or inside `ray job submit`), else a private local one.

Every stage that uses Ray (the workflow driver, and the stages run alone from their CLIs) connects here. The
workers get the environment that keeps other libraries quiet (`ui.quiet_third_party`) through the runtime
environment, added to a submitted job's own."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Any, Callable, Iterator

import ray
from ray._private import ray_constants

from .ui import worker_quiet_env

log = logging.getLogger(__name__)

FORWARDED = ("MLFLOW_TRACKING_URI", "PUZZLE_RAY_STORE", "DS_ACCELERATOR", "HF_HUB_OFFLINE")
"""The driver's variables that workers of a local cluster inherit (when set)."""
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray in the driver of a submitted job: the job's config, with its runtime environment."""
SINGLE_MACHINE = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
"""Ray's switch for its single-machine mode (its default on macOS and Windows): "0" makes the node's address
127.0.0.1, so every process of the cluster listens on the loopback interface only."""


def worker_env(local: bool) -> dict[str, str]:
    """The env_vars of the workers' runtime environment. On an existing cluster the driver's machine-specific
    values are left out, and so is any variable the submitted job's runtime environment sets (Ray refuses to
    merge the same variable twice; the job's wins)."""
    env = {"RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false", **worker_quiet_env(same_machine=local)}
    if local:
        for name in FORWARDED:
            if os.environ.get(name):
                env[name] = os.environ[name]
    job_env = _job_env_vars()
    return {k: v for k, v in env.items() if k not in job_env}


def _job_env_vars() -> dict:
    try:
        job = json.loads(os.environ.get(JOB_CONFIG) or "{}")
    except ValueError:
        return {}
    return ((job.get("runtime_env") or {}).get("env_vars")) or {}


def connect(num_cpus: int | None = None, num_gpus: int | None = None, object_store_mb: int = 512) -> str:
    """Initialise Ray once; returns 'existing' or 'local'.

    A stale `ray_current_cluster` file left by a crashed run makes a bare `ray.init()` try to join a dead
    cluster, so without RAY_ADDRESS we always start a private one with `address="local"`.
    """
    if ray.is_initialized():
        return "existing"
    if os.environ.get("RAY_ADDRESS"):
        # Inside `ray job submit` the job's own runtime_env (working_dir, env_vars) applies; Ray merges these
        # variables into it.
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": worker_env(local=False)})
        log.info("connected to Ray at %s", os.environ["RAY_ADDRESS"])
        return "existing"
    # Ray 2.60 turns token authentication on for a new local cluster (good) and warns that it did, on every
    # start; for our private cluster that is noise. (Setting RAY_AUTH_MODE=token would also silence it, but Ray
    # reads the mode when it is imported, which here has happened.)
    logging.getLogger(AUTH_LOGGER).setLevel(logging.ERROR)
    with _loopback_only():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            include_dashboard=False,
            object_store_memory=object_store_mb * 2**20,
            log_to_driver=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": worker_env(local=True)},
        )
    return "local"


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Start the private cluster in Ray's single-machine mode. Otherwise Ray gives the node the machine's
    network address and its processes listen on it or on all interfaces: the GCS, the raylet, the workers and
    three unauthenticated Prometheus endpoints (the autoscaler's, the dashboard head's and the agent's).
    `ray.init(_node_ip_address="127.0.0.1")` does not do it (Ray replaces a loopback address by the network
    one). The cluster's processes read the variable when they import Ray; the driver imported it already, so
    its copy of the flag is set too. Both are restored once the cluster is up: the node keeps its address, and a
    later connection to a real cluster from this process must not announce 127.0.0.1."""
    saved_env, saved_flag = os.environ.get(SINGLE_MACHINE), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(SINGLE_MACHINE, None)
        else:
            os.environ[SINGLE_MACHINE] = saved_env


def get_with_progress(weights: dict, advance: Callable[[float], Any]) -> list:
    """`ray.get` of every ref in `weights` (results in its order), calling `advance(weight)` as each ref's
    result arrives (in completion order): for progress bars over remote work."""
    results, pending = {}, list(weights)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        results[done[0]] = ray.get(done[0])
        advance(weights[done[0]])
    return [results[ref] for ref in weights]
