"""MLflow records of a workflow run: one parent run, one nested run per stage (created with the client API,
so Ray workers can log into it by run id).

Embedded default: a SQLite store `mlflow.db` in the working directory; `MLFLOW_TRACKING_URI` (or the config)
points at a tracking server instead. A re-submitted run of the same plan continues its unfinished parent run.
"""

from __future__ import annotations

import os
import time

import mlflow
from mlflow import MlflowClient
from mlflow.entities import RunStatus

PLAN_TAG = "puzzle_ray.plan"


def tracking_uri(configured: str | None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or configured or "sqlite:///mlflow.db"


class WorkflowTracking:
    def __init__(self, uri: str, experiment: str, workflow: str, plan: str):
        mlflow.set_tracking_uri(uri)
        os.environ["MLFLOW_TRACKING_URI"] = uri  # Ray workers started later inherit it
        self.uri, self.workflow, self.plan = uri, workflow, plan
        self.client = MlflowClient(uri)
        exp = self.client.get_experiment_by_name(experiment)
        self.experiment_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        self.run_id: str | None = None

    def start(self) -> str:
        """The parent run: the unfinished one of this plan if there is one, else a new one."""
        unfinished = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PLAN_TAG}` = '{self.plan}' and attributes.status != 'FINISHED'",
            max_results=1,
        )
        if unfinished:
            self.run_id = unfinished[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            run = self.client.create_run(
                self.experiment_id, run_name=self.workflow,
                tags={PLAN_TAG: self.plan, "puzzle_ray.workflow": self.workflow},
            )
            self.run_id = run.info.run_id
        return self.run_id

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

    def end_stage(self, run_id: str, ok: bool, seconds: float | None) -> None:
        if seconds is not None:
            self.client.log_metric(run_id, "stage_seconds", seconds)
        self.client.set_terminated(run_id, "FINISHED" if ok else "FAILED", end_time=int(time.time() * 1000))

    def finish(self, ok: bool) -> None:
        if self.run_id:
            self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED if ok else RunStatus.FAILED))
