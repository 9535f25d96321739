"""MLflow records of a workflow run: one parent run, one nested run per stage (created with the client API,
so Ray workers can log into it by run id).

What a reviewer opens is the parent run, so it carries the result: the flattened workflow config as
parameters, the headline figures (measured speed-ups, quality retentions, parameter and KV fractions) as
metrics, the summary as its description, and tags pointing at the registered model. Every stage run logs its
duration and its output's key figures (`StageOutput.key_figures`). The experiment is tagged as a
model-development experiment, so MLflow's UI opens it on runs and metrics, not on GenAI traces.

Embedded default: a SQLite store `mlflow.db` in the working directory; `MLFLOW_TRACKING_URI` (or the config)
points at a tracking server instead. A re-submitted run of the same plan continues its unfinished parent run.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus

from ..store import exclusive_lock

PLAN_TAG = "puzzle_ray.plan"
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
DESCRIPTION_TAG = "mlflow.note.content"
"""The tag MLflow's UI shows as a run's (and an experiment's) description."""
PARAM_VALUE_LIMIT = 6000
"""MLflow 3's longest parameter value; longer values (long lists) are cut with a marker."""


def tracking_uri(configured: str | None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlflow.db"


@contextmanager
def first_use_lock(uri: str) -> Iterator[None]:
    """Serialise the first contact with a local SQLite tracking store (MLflow creates its schema then, and two
    processes doing it at once fail with 'table ... already exists'); other stores need nothing."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(db.with_name(db.name + ".lock")):
        yield


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as dotted parameter names -> strings (lists and empty sections as JSON)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            out[name] = text if len(text) <= PARAM_VALUE_LIMIT else text[: PARAM_VALUE_LIMIT - 12] + " …(cut)"
    return out


def _metrics(figures: dict[str, float], step: int = 0) -> list[Metric]:
    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in figures.items() if v is not None and math.isfinite(v)]


class WorkflowTracking:
    def __init__(self, uri: str, experiment: str, workflow: str, plan: str):
        mlflow.set_tracking_uri(uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri  # Ray workers started later inherit it
        self.uri, self.workflow, self.plan = uri, workflow, plan
        with first_use_lock(uri):  # two drivers starting on a new SQLite store would both create its tables
            self.client = MlflowClient(uri)
            exp = self.client.get_experiment_by_name(experiment)
            if exp is None:
                self.client.create_experiment(experiment, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
                exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id
        if EXPERIMENT_KIND_TAG not in exp.tags:  # experiments made by older versions
            self.client.set_experiment_tag(self.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        self.run_id: str | None = None

    def start(self, config: dict[str, Any] | None = None) -> str:
        """The parent run: the unfinished one of this plan if there is one, else a new one. `config` (the
        workflow config's JSON form) is logged flattened as the run's parameters."""
        unfinished = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PLAN_TAG}` = '{self.plan}' and attributes.status != 'FINISHED'",
            max_results=1,
        )
        if unfinished:
            self.run_id = unfinished[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            self._end_orphaned_stage_runs()
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=self.workflow,
                tags={PLAN_TAG: self.plan, "puzzle_ray.workflow": self.workflow,
                      DESCRIPTION_TAG: f"Puzzle workflow `{self.workflow}`: running (the summary replaces this "
                                       "text when the evaluation has finished)."},
            )
            self.run_id = run.info.run_id
        if config is not None:
            self.log_params(self.run_id, flatten(config))
        return self.run_id

    def _end_orphaned_stage_runs(self) -> None:
        """Stage runs a killed driver left RUNNING: marked KILLED (the store's writer lock, held by this driver,
        means no other driver is still working on them)."""
        orphans = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{self.run_id}' and attributes.status = 'RUNNING'",
        )
        for run in orphans:
            self.client.set_terminated(run.info.run_id, "KILLED")

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        """Parameters not logged yet (a resumed run keeps its own: MLflow parameters cannot change)."""
        have = self.client.get_run(run_id).data.params
        todo = [Param(k, v) for k, v in params.items() if k not in have]
        for i in range(0, len(todo), 100):  # the store's batch limit
            self.client.log_batch(run_id, params=todo[i : i + 100])

    def stage_run(self, stage: str, key: str, cached: bool = False) -> str:
        run = self.client.create_run(
            self.experiment_id,
            run_name=stage,
            tags={"mlflow.parentRunId": self.run_id, "puzzle_ray.stage": stage, "puzzle_ray.stage_key": key,
                  "puzzle_ray.cached": str(cached).lower()},
        )
        if cached:
            self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def log_stage(self, run_id: str, seconds: float | None, figures: dict[str, float]) -> None:
        """A stage's duration (`stage_seconds`) and its key figures, on its own run."""
        figures = dict(figures)
        if seconds is not None:
            figures["stage_seconds"] = seconds
        self.client.log_batch(run_id, metrics=_metrics(figures))

    def log_result(self, metrics: dict[str, float], description: str, tags: dict[str, str]) -> None:
        """The workflow's result on the parent run: headline metrics, the summary as description, model tags."""
        self.client.log_batch(self.run_id, metrics=_metrics(metrics))
        self.client.set_tag(self.run_id, DESCRIPTION_TAG, description)
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def finish(self, ok: bool) -> None:
        if self.run_id:
            self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED))
