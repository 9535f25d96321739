"""Reading a finished workflow run back from MLflow (client API only), for the review notebook.

A stage skipped because it had finished earlier appears in a later parent run as a nested run tagged
`puzzle_ray.cached=true`; its figures and tables live in the stage run that produced it, found by stage key.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run

from .tracking import PLAN_TAG


def latest_workflow_run(client: MlflowClient, experiment: str | None = None) -> Run:
    """The newest parent run of a workflow (optionally in one experiment)."""
    exps = [client.get_experiment_by_name(experiment)] if experiment else client.search_experiments()
    ids = [e.experiment_id for e in exps if e is not None]
    runs = client.search_runs(ids, filter_string=f"tags.`{PLAN_TAG}` LIKE '%'", order_by=["attributes.start_time DESC"],
                              max_results=1)
    if not runs:
        raise LookupError(f"no puzzle-ray workflow run in {experiment or 'any experiment'} at {client.tracking_uri}")
    return runs[0]


def stage_runs(client: MlflowClient, parent: Run) -> dict[str, Run]:
    """Stage name -> the run that did the stage's work (following cached stages to their producer)."""
    exp = parent.info.experiment_id
    nested = client.search_runs([exp], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                max_results=1000)
    out = {}
    for run in sorted(nested, key=lambda r: r.info.start_time):
        name = run.data.tags["puzzle_ray.stage"]
        if run.data.tags.get("puzzle_ray.cached") == "true":
            key = run.data.tags["puzzle_ray.stage_key"]
            producers = client.search_runs([exp], filter_string=f"tags.`puzzle_ray.stage_key` = '{key}' and "
                                                                 "tags.`puzzle_ray.cached` = 'false'",
                                           order_by=["attributes.start_time DESC"], max_results=1)
            run = producers[0] if producers else run
        out[name] = run
    return out


def timeline(stages: dict[str, Run]) -> pd.DataFrame:
    """One row per stage: start, seconds, whether it was reused."""
    rows = []
    for name, run in stages.items():
        end = run.info.end_time or run.info.start_time
        rows.append({"stage": name, "start": pd.to_datetime(run.info.start_time, unit="ms"),
                     "seconds": (end - run.info.start_time) / 1000, "run_id": run.info.run_id})
    return pd.DataFrame(rows)


def artifact_json(client: MlflowClient, run: Run, path: str):
    with tempfile.TemporaryDirectory(prefix="puzzle-review-") as folder:
        local = client.download_artifacts(run.info.run_id, path, folder)
        return json.loads(Path(local).read_text())


def table(client: MlflowClient, run: Run, path: str) -> pd.DataFrame:
    """A table logged with `log_table` (column-major JSON) as a DataFrame."""
    data = artifact_json(client, run, path)
    if isinstance(data, dict) and "columns" in data and "data" in data:  # mlflow's own table layout
        return pd.DataFrame(data["data"], columns=data["columns"])
    return pd.DataFrame(data)


def metric_curves(client: MlflowClient, run: Run, prefix: str) -> dict[str, pd.DataFrame]:
    """Every metric of `run` whose key starts with `prefix`: key -> (step, value) frame."""
    out = {}
    for key in sorted(k for k in run.data.metrics if k.startswith(prefix)):
        hist = client.get_metric_history(run.info.run_id, key)
        out[key] = pd.DataFrame({"step": [m.step for m in hist], "value": [m.value for m in hist]}).sort_values("step")
    return out
