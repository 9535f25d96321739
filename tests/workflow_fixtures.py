"""One run of the micro workflow per test session, shared by the workflow and notebook tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MICRO = ROOT / "tests" / "assets" / "micro-workflow.yaml"


def micro_config(tmp: Path, name: str = "micro", **changes) -> Path:
    """A copy of the micro config with its store under `tmp` and `changes` merged into its sections."""
    data = yaml.safe_load(MICRO.read_text())
    data["store"] = str(tmp / "store")
    data["name"] = name
    for section, value in changes.items():
        merge = isinstance(value, dict) and isinstance(data.get(section), dict)
        data[section] = {**data[section], **value} if merge else value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def micro_cache(tmp_path_factory):
    """Token / parent cache of the session's micro runs (the micro parent pretrains in seconds, once)."""
    path = tmp_path_factory.mktemp("puzzle-cache")
    os.environ["PUZZLE_RAY_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def micro_run(ray_cluster, mlflow_uri, micro_cache, tmp_path_factory):
    """(folder, config path, stage statuses) of one complete run of the micro workflow."""
    from puzzle_ray.workflows import run_workflow

    tmp = tmp_path_factory.mktemp("micro-run")
    config = micro_config(tmp)
    return tmp, config, run_workflow(config)
