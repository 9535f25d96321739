"""The shared console and progress bars, and the environment that keeps other libraries quiet in Ray workers."""

import io
import json
import os
import subprocess
import sys
import time

import pytest
from rich.console import Console

from puzzle_ray import ui
from puzzle_ray.cluster import worker_env


def test_console_is_wide_when_not_a_terminal(capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert not ui.console.is_terminal  # pytest captures stdout
    assert ui.console.width == ui.LOG_WIDTH
    with ui.progress("tok") as bar:
        task = bar.add_task("BLD: evaluation (final) of every library entry", total=448512)
        bar.advance(task, 448512)
    out = capsys.readouterr().out
    assert "448512/448512" in out and "BLD: evaluation (final) of every library entry" in out and "…" not in out


def test_a_terminal_keeps_rich_width_and_columns_is_respected(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    terminal = ui.make_console(file=io.StringIO(), force_terminal=True)
    assert terminal.width == Console(file=io.StringIO(), force_terminal=True).width
    assert ui.make_console(file=io.StringIO(), width=90).width == 90
    monkeypatch.setenv("COLUMNS", "100")
    assert ui.make_console(file=io.StringIO()).width == 100


def test_running_bars_print_lines_to_a_log_and_tasks_name_their_unit(capsys):
    bar = ui.progress("tok", transient=True, log_every=0.05)  # transient: rich itself prints nothing to a log
    with bar:
        task = bar.add_task("calibration", total=4, unit="batch")
        bar.advance(task, 2)
        time.sleep(0.4)
        bar.advance(task, 2)
    lines = [line for line in capsys.readouterr().out.splitlines() if "calibration" in line]
    assert lines and all("2/4" in line and "batch/s" in line for line in lines)
    with ui.progress("tok", log_every=0.05) as quick:  # finished before the first line is due: the final one only
        quick.add_task("instant", total=1, completed=1)
    assert capsys.readouterr().out.count("instant") == 1


def _clear_quiet_env(monkeypatch):
    for name in ui.QUIET_ENV:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)  # restored (to absent or its value) after the test
    monkeypatch.setattr(ui, "_SET_HERE", set())


def test_worker_env_keeps_the_users_values_and_leaves_the_job_its_own(monkeypatch):
    _clear_quiet_env(monkeypatch)
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    monkeypatch.setattr(ui, "_has_gpu", lambda: False)
    local = worker_env(local=True)
    assert local["TRANSFORMERS_VERBOSITY"] == "info" and local["TQDM_DISABLE"] == "1"
    assert local["DS_ACCELERATOR"] == "cpu" and local["RAY_USAGE_STATS_ENABLED"] == "0"
    job = {"runtime_env": {"working_dir": ".", "env_vars": {"TQDM_DISABLE": "0"}}}
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))
    remote = worker_env(local=False)
    assert "TQDM_DISABLE" not in remote  # Ray refuses to merge a variable the job sets too
    assert "DS_ACCELERATOR" not in remote  # this machine has no GPU; the cluster's may
    assert remote["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"


def test_quiet_env_reaches_ray_workers(tmp_path):
    """A fresh driver's `connect()` gives workers the quiet variables (the test session's cluster is not used)."""
    script = """
import json, os, ray
from puzzle_ray.cluster import connect
connect(num_cpus=1, object_store_mb=128)
names = ["TRANSFORMERS_VERBOSITY", "TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS", "RAY_USAGE_STATS_ENABLED"]
print("ENV", json.dumps(ray.get(ray.remote(lambda: {n: os.environ.get(n) for n in names}).remote())))
ray.shutdown()
"""
    env = {k: v for k, v in os.environ.items() if k not in ui.QUIET_ENV and k != "RAY_ADDRESS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("ENV "))
    assert "Token authentication is enabled" not in out.stderr  # Ray's notice at every local start
    assert json.loads(line[4:]) == {"TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1",
                                    "HF_HUB_DISABLE_PROGRESS_BARS": "1", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.mark.parametrize("module", ["puzzle_ray.score.worker:ScoreWorker.__init__",
                                    "puzzle_ray.library.actor:BLDWorker.__init__",
                                    "puzzle_ray.distill.worker:gkd_worker"])
def test_ray_entry_points_quiet_their_process_first(module):
    import importlib
    import inspect

    path, attr = module.split(":")
    obj = importlib.import_module(path)
    for part in attr.split("."):
        obj = getattr(obj, part)
    lines = [line.strip() for line in inspect.getsource(obj).splitlines() if line.strip()]
    assert any(line.startswith("quiet_third_party()") for line in lines[1:6]), f"{module}: {lines[:6]}"


def test_repeated_export_warnings_print_once(caplog):
    import logging

    ui.quiet_third_party()
    log = logging.getLogger("puzzle_ray.arch.export")
    with caplog.at_level(logging.WARNING, logger="puzzle_ray.arch.export"):
        for _ in range(2):  # realize, then distill, export the same architecture
            log.warning("layers [2, 3] use linear replacements: vLLM has no loader path for them")
        log.warning("another architecture's warning")
    assert [r.getMessage() for r in caplog.records] == [
        "layers [2, 3] use linear replacements: vLLM has no loader path for them", "another architecture's warning"]


def test_a_new_mlflow_store_is_created_quietly(tmp_path):
    """MLflow resets its root logger when imported, after `quiet_third_party`: its store notices stay quiet."""
    script = ("from puzzle_ray.ui import quiet_third_party; quiet_third_party(); import mlflow; "
              "mlflow.set_tracking_uri('sqlite:///mlflow.db'); mlflow.set_experiment('e')")
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "mlflow.db").exists() and "Creating initial MLflow database tables" not in res.stderr
