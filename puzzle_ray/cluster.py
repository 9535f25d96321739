"""Connect to Ray: an existing cluster (RAY_ADDRESS, or inside `ray job submit`), else a private local one.

Every stage that uses Ray (the workflow driver, and the stages run alone from their CLIs) connects here. The
workers get the environment that keeps other libraries quiet (`ui.quiet_third_party`) through the runtime
environment, added to a submitted job's own."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Callable

import ray

from .ui import worker_quiet_env

log = logging.getLogger(__name__)

FORWARDED = ("MLFLOW_TRACKING_URI", "PUZZLE_RAY_STORE", "DS_ACCELERATOR", "HF_HUB_OFFLINE")
"""The driver's variables that workers of a local cluster inherit (when set)."""
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
JOB_CONFIG = "RAY_JOB_CONFIG_JSON_ENV_VAR"
"""Set by Ray in the driver of a submitted job: the job's config, with its runtime environment."""


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


def get_with_progress(weights: dict, advance: Callable[[float], Any]) -> list:
    """`ray.get` of every ref in `weights` (results in its order), calling `advance(weight)` as each ref's
    result arrives (in completion order): for progress bars over remote work."""
    results, pending = {}, list(weights)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        results[done[0]] = ray.get(done[0])
        advance(weights[done[0]])
    return [results[ref] for ref in weights]
