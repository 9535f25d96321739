"""The workflow's MLflow records across driver lifetimes: a killed driver's runs, a store's first use."""

from __future__ import annotations

import subprocess
import sys

from mlflow import MlflowClient

from puzzle_ray.workflows.tracking import WorkflowTracking


def test_a_resumed_workflow_marks_the_killed_drivers_stage_runs_killed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = WorkflowTracking(uri, "exp", "wf", plan="plan-1")
    parent = first.start()
    done = first.stage_run("parent", "k0", cached=True)
    left_running = first.stage_run("library", "k1")  # the driver was killed here: never terminated
    again = WorkflowTracking(uri, "exp", "wf", plan="plan-1")
    assert again.start() == parent  # the same workflow run resumes
    client = MlflowClient(uri)
    assert client.get_run(left_running).info.status == "KILLED"
    assert client.get_run(done).info.status == "FINISHED"
    assert client.get_run(parent).info.status == "RUNNING"


FIRST_CONTACT = """
import sys
from puzzle_ray.workflows.tracking import WorkflowTracking
WorkflowTracking(sys.argv[1], "exp", "wf", plan=sys.argv[2]).start()
print("ok")
"""


def test_two_drivers_on_a_new_sqlite_store_both_start(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", FIRST_CONTACT, uri, f"plan-{i}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    client = MlflowClient(uri)
    (exp,) = [e for e in client.search_experiments() if e.name == "exp"]
    assert len(client.search_runs([exp.experiment_id])) == 3
