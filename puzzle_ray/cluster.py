"""Connect to Ray: an existing cluster (RAY_ADDRESS, or inside `ray job submit`), else a private local one.

Every stage that uses Ray (the workflow driver, and the stages run alone from their CLIs) connects here."""

from __future__ import annotations

import logging
import os

import ray

from .ui import quiet_third_party

log = logging.getLogger(__name__)


def connect(num_cpus: int | None = None, num_gpus: int | None = None, object_store_mb: int = 512) -> str:
    """Initialise Ray once; returns 'existing' or 'local'.

    A stale `ray_current_cluster` file left by a crashed run makes a bare `ray.init()` try to join a dead
    cluster, so without RAY_ADDRESS we always start a private one with `address="local"`.
    """
    if ray.is_initialized():
        return "existing"
    env = {"RAY_USAGE_STATS_ENABLED": "0", "TOKENIZERS_PARALLELISM": "false", **quiet_third_party()}
    for name in ("MLFLOW_TRACKING_URI", "PUZZLE_RAY_STORE", "DS_ACCELERATOR", "HF_HUB_OFFLINE"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    if os.environ.get("RAY_ADDRESS"):
        # Inside `ray job submit` the job's own runtime_env (working_dir, env_vars) applies; don't override it.
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
        log.info("connected to Ray at %s", os.environ["RAY_ADDRESS"])
        return "existing"
    ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        object_store_memory=object_store_mb * 2**20,
        log_to_driver=False,
        logging_level=logging.WARNING,
        runtime_env={"env_vars": env},
    )
    return "local"
