"""The review notebooks execute against the micro workflow's run of this session (so they cannot silently rot)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


def execute(name: str, env: dict[str, str], tmp_path: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb


def outputs(nb) -> str:
    return "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_notebooks_are_committed_with_the_outputs_of_a_real_run():
    """A reviewer on the forge sees results, not only code; the outputs stay small and name no local paths."""
    for name in ("review_run.ipynb", "pcw_demo.ipynb"):
        path = ROOT / "notebooks" / name
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("outputs") for c in code), f"{name}: a code cell without outputs"
        assert not any(o.get("output_type") == "error" for c in code for o in c.outputs), name
        assert path.stat().st_size < 1_500_000, f"{name}: {path.stat().st_size} bytes of outputs"
        text = outputs(nb)
        local = (tempfile.gettempdir(), str(Path.home()), str(ROOT))  # this machine's paths, found at run time
        assert not any(p in text for p in local), f"{name}: a local path"


def test_review_notebook_runs_on_the_session_run(micro_run, mlflow_uri, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("micro")
    parents = [r for r in client.search_runs([exp.experiment_id], max_results=200)
               if "mlflow.parentRunId" not in r.data.tags]
    run_id = min(parents, key=lambda r: r.info.start_time).info.run_id
    nb = execute("review_run.ipynb", {"MLFLOW_TRACKING_URI": mlflow_uri, "PUZZLE_RAY_RUN_ID": run_id}, tmp_path)
    text = outputs(nb)
    assert run_id in text and "kl_from_parent" in text and "BLD curves" in text


def test_pcw_notebook_runs_on_the_session_parent(micro_run, tmp_path):
    _, _, status = micro_run
    nb = execute("pcw_demo.ipynb",
                 {"PUZZLE_RAY_MODEL": status["parent"].outputs["model_dir"], "PUZZLE_RAY_PCW_EPISODES": "4",
                  "PUZZLE_RAY_PCW_WINDOW": "64"}, tmp_path)  # the micro parent's position limit
    assert "±" in outputs(nb)
