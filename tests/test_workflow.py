"""The end-to-end workflow on the micro config: a full run, resumption, partial re-runs, MLflow records, bad input.

Integration tests: each runs real stages (pretraining a 3-layer parent, BLD on Ray actors, scoring, measuring,
the MIP, GKD on Ray Train, evaluation, the MLflow registry), on the session's local Ray cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from puzzle_ray.store import ArtifactStore
from puzzle_ray.workflows import load_config
from puzzle_ray.workflows.config import ConfigError

from .workflow_fixtures import ROOT, micro_config


pytestmark = pytest.mark.integration


def cli(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """`puzzle-ray ARGS` in a fresh process (attached to the session's Ray cluster through RAY_ADDRESS)."""
    return subprocess.run([sys.executable, "-m", "puzzle_ray.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy(), cwd=cwd)


@pytest.fixture(scope="module", autouse=True)
def attach_subprocesses(ray_cluster):
    """Drivers started by these tests join the session's cluster instead of starting their own."""
    os.environ["RAY_ADDRESS"] = ray_cluster.get_runtime_context().gcs_address
    yield
    os.environ.pop("RAY_ADDRESS", None)


def test_full_pipeline_runs_and_summarises(micro_run):
    tmp, config, status = micro_run
    assert all(st.state == "done" for st in status.values()), {n: st.state for n, st in status.items()}
    report = status["evaluate"].outputs["report"]
    metrics = {r["metric"]: r for r in report["rows"]}
    assert metrics["num_params"]["child"] <= 0.75 * metrics["num_params"]["parent"]  # the MIP constraint held
    assert metrics["kl_from_parent"]["child"] > 0
    assert (status["publish"].outputs["published"]
            and status["publish"].outputs["model_uri"] == "models:/micro-child@candidate")
    store = ArtifactStore(tmp / "store")
    assert "Puzzle child vs parent" in store.read_bytes("runs/micro/summary.md").decode()


def test_second_run_skips_every_stage(micro_run):
    from puzzle_ray.workflows import run_workflow

    _, config, _ = micro_run
    start = time.perf_counter()
    status = run_workflow(config)
    assert {st.state for st in status.values()} == {"cached"}
    assert time.perf_counter() - start < 60


def test_changing_only_the_constraint_reruns_check_solve_and_after(micro_run):
    from puzzle_ray.workflows import run_workflow

    tmp, _, _ = micro_run
    config = micro_config(tmp, search={"objective": "metrics.kl_div", "constraints": ["stats.num_params<=0.9*parent"]})
    status = run_workflow(config)
    states = {n: st.state for n, st in status.items()}
    assert states["parent"] == states["measure"] == states["library"] == states["score"] == "cached"
    assert all(states[n] == "done" for n in ("check", "solve", "realize", "distill", "evaluate", "publish")), states


def test_mlflow_holds_parent_run_nested_stage_runs_and_registered_model(micro_run, mlflow_uri):
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("micro")
    runs = client.search_runs([exp.experiment_id], max_results=200)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parents and all(r.info.status == "FINISHED" for r in parents)
    first = min(parents, key=lambda r: r.info.start_time)
    children = {r.data.tags["puzzle_ray.stage"] for r in runs
                if r.data.tags.get("mlflow.parentRunId") == first.info.run_id}
    assert children == {"parent", "measure", "check", "library", "score", "solve", "realize", "distill", "evaluate",
                        "publish"}
    solve = next(r for r in runs if r.data.tags.get("mlflow.parentRunId") == first.info.run_id
                 and r.data.tags["puzzle_ray.stage"] == "solve")
    artifacts = {a.path for a in client.list_artifacts(solve.info.run_id, "solve")}
    assert {"solve/architecture.png", "solve/frontier.png"} <= artifacts
    version = client.get_model_version_by_alias("micro-child", "candidate")
    assert version.run_id


def test_the_workflow_run_a_reviewer_opens_carries_the_result(micro_run, mlflow_uri):
    """The parent run shows the result itself: config as params, headline metrics, the summary as description,
    a link to the registered model; stage runs log durations; the evaluation has two comparable runs."""
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("micro")
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"  # not opened as a GenAI experiment
    runs = client.search_runs([exp.experiment_id], max_results=500)
    run = min((r for r in runs if "mlflow.parentRunId" not in r.data.tags), key=lambda r: r.info.start_time)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["bld.token_budget"] == "2048" and params["distill.engine"] == "ddp"
    assert json.loads(params["search.constraints"]) == ["stats.num_params<=0.75*parent"]
    assert 0 < metrics["params_fraction"] <= 0.75 + 1e-9 and metrics["kv_fraction"] > 0
    assert metrics["decode_speedup_at_2"] > 0 and metrics["prefill_speedup_at_2"] > 0
    assert metrics["kl_from_parent"] > 0 and 0 < metrics["top1_accuracy_retention"]
    assert not any(k.startswith("kl_from_parent_") for k in metrics)  # no "retention" of a divergence
    description = tags["mlflow.note.content"]
    assert description.startswith("# micro: Puzzle child vs parent") and "decode throughput at batch 2" in description
    # (the alias may since have moved to a later run's version: other tests re-run publish on this store)
    assert tags["puzzle_ray.registered_model"] == "models:/micro-child@candidate"
    version = client.get_model_version("micro-child", tags["puzzle_ray.registered_version"])
    assert version.run_id == run.info.run_id  # the registered version's source is the workflow run
    stages = {r.data.tags["puzzle_ray.stage"]: r for r in runs
              if r.data.tags.get("mlflow.parentRunId") == run.info.run_id}
    assert all(r.data.metrics["stage_seconds"] > 0 for r in stages.values()), {
        n: sorted(r.data.metrics) for n, r in stages.items() if "stage_seconds" not in r.data.metrics}
    assert stages["library"].data.metrics["entries"] > 0 and "objective" in stages["solve"].data.metrics
    assert stages["parent"].data.metrics["train_tokens"] > 0
    roles = {r.data.tags["puzzle_ray.eval_role"]: r for r in runs
             if r.data.tags.get("mlflow.parentRunId") == stages["evaluate"].info.run_id}
    assert set(roles) == {"parent", "child"}
    assert set(roles["parent"].data.metrics) == set(roles["child"].data.metrics) >= {"lm_loss", "kl_from_parent"}
    assert roles["parent"].data.metrics["kl_from_parent"] == 0 < roles["child"].data.metrics["kl_from_parent"]


def test_unknown_key_is_rejected_naming_it(tmp_path):
    path = micro_config(tmp_path, bld={"tokn_budget": 5})
    with pytest.raises(ConfigError, match=r"bld\.tokn_budget: Extra inputs are not permitted"):
        load_config(path)
    res = cli("run", str(path))
    assert res.returncode == 2 and "bld.tokn_budget" in res.stderr and not (tmp_path / "store").exists()


def test_missing_parent_path_stops_before_any_work(tmp_path):
    res = cli("run", str(micro_config(tmp_path, parent={"path": str(tmp_path / "no-such-model")})))
    assert res.returncode == 2 and "no-such-model" in res.stderr
    assert not (tmp_path / "store").exists()  # a failed pre-flight leaves no empty store behind


@pytest.mark.parametrize("change, message", [
    ({"search": {"objective": "metrics.kl_divergence"}}, "search.objective: 'metrics.kl_divergence' is not in"),
    ({"search": {"constraints": ["stats.decode_time<=0.5*parent"]}}, "search.constraints[0]: 'stats.decode_time'"),
    ({"sweep_points": -3}, "sweep_points=-3: give 0"),
])
def test_a_search_typo_stops_before_any_work(tmp_path, change, message):
    res = cli("run", str(micro_config(tmp_path, **change)))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "store").exists()


def test_unwritable_store_stops_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = micro_config(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["store"] = str(blocker / "store")
    path.write_text(yaml.safe_dump(data))
    res = cli("run", str(path))
    assert res.returncode == 2 and "not writable" in res.stderr


def test_unreachable_target_is_explained_before_the_library_is_built(micro_run, micro_cache):
    tmp, _, _ = micro_run
    path = micro_config(tmp, name="impossible",
                        search={"objective": "metrics.kl_div", "constraints": ["stats.num_params<=0.01*parent"]})
    res = cli("run", str(path))
    assert res.returncode == 1, res.stderr
    assert "stage 'check' failed" in res.stderr and "stats.num_params" in res.stderr
    records = ArtifactStore(tmp / "store")
    assert records.list("stages/check") == records.list("stages/check")  # readable
    done = json.loads(records.read_bytes(f"stages/measure/{records.list('stages/measure')[0]}/record.json"))
    assert done["outputs"]  # completed stages are kept


def test_run_killed_during_bld_resumes_with_the_same_result(micro_run, micro_cache, tmp_path):
    """Kill the driver (and its local Ray cluster) once BLD has checkpointed, run again, compare libraries."""
    # 32x the micro plan's BLD steps (a micro step takes milliseconds), so that the kill lands well before BLD
    # ends; an uninterrupted library of the same plan is the reference
    bld = {"token_budget": 65536, "checkpoint_every": 4}
    (tmp_path / "ref").mkdir()
    ref = cli("run", str(micro_config(tmp_path / "ref", name="killed-ref", bld=bld)), "--until", "library",
              cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr[-2000:]
    reference = ArtifactStore(tmp_path / "ref" / "store")
    path = micro_config(tmp_path, name="killed", bld=bld)
    store = ArtifactStore(tmp_path / "store")
    proc = subprocess.Popen([sys.executable, "-m", "puzzle_ray.workflows", str(path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            ckpts = [p for p in (tmp_path / "store" / "library").glob("*/ckpt/*/step_*/state.json")
                     if p.parent.name != "step_00000000"]  # a checkpoint after training began
            if ckpts:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before BLD checkpointed"
        assert ckpts, "BLD never checkpointed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not list((tmp_path / "store" / "library").glob("*/complete.json"))
    res = cli("run", str(path), "--until", "library", cwd=tmp_path)  # what the reference has; later stages add nothing
    assert res.returncode == 0, res.stderr[-2000:]
    key = store.list("library")[0]
    assert json.loads(store.read_bytes(f"library/{key}/complete.json"))["restored_from"], "BLD did not resume"
    ours = store.read_json(f"library/{key}/block_library.json")
    theirs = reference.read_json(f"library/{key}/block_library.json")
    for layer, variants in theirs.items():
        for name, entry in variants.items():
            assert ours[layer][name]["bld"]["nmse_final"] == pytest.approx(entry["bld"]["nmse_final"], rel=1e-4,
                                                                           abs=1e-7)
    from mlflow import MlflowClient

    client = MlflowClient(os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("micro")
    runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
            if r.data.tags.get("puzzle_ray.workflow") == "killed" or r.info.run_name == "killed"]
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    stages = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    statuses = {r.info.status for r in stages}
    assert "RUNNING" not in statuses and "KILLED" in statuses  # the killed driver's library run, marked so


def test_two_runs_at_once_on_one_store_compute_each_stage_once(micro_cache, tmp_path):
    path = micro_config(tmp_path, name="twice")
    # up to score (parent, library, score: Ray actors and stage runs of their own), without GKD's Ray Train start-up
    until = ["--until", "score"]
    procs = [subprocess.Popen([sys.executable, "-m", "puzzle_ray.cli", "run", str(path), *until], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy())
             for _ in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-3000:] for o in outs]
    waited = [o for o in outs if "is in use by twice (pid" in o]
    assert len(waited) == 1  # the second driver waited for the first, saying who held the store
    assert waited[0].count("finished earlier") == 3  # ...then found every stage done (parent, library, score)


def test_ray_job_submit_against_a_local_head_node(micro_run, micro_cache, tmp_path):
    """`ray start --head` + `ray job submit --working-dir .` runs the workflow (every stage cached: quick)."""
    _, config, _ = micro_run
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    ray_bin = str(Path(sys.executable).parent / "ray")
    # --block keeps `ray start` in the foreground; terminating it stops this head node and nothing else.
    log = open(tmp_path / "head.log", "w")
    head = subprocess.Popen([ray_bin, "start", "--head", "--block", "--port=6391", "--num-cpus=2",
                             "--dashboard-port=8272", "--include-dashboard=true",
                             f"--temp-dir={tempfile.mkdtemp(prefix='rj', dir='/tmp')}",
                             # ports of its own: the session's cluster already holds the agents' default ports
                             "--dashboard-agent-listen-port=52391", "--dashboard-agent-grpc-port=52392",
                             "--metrics-export-port=52393", "--runtime-env-agent-port=52394"],
                            env=env, stdout=log, stderr=log)  # (a short temp dir: Ray's unix sockets allow 107 bytes)
    try:
        deadline = time.time() + 300
        while not _answers("http://127.0.0.1:8272/api/version"):  # the job server starts after the head node
            assert head.poll() is None and time.time() < deadline, (tmp_path / "head.log").read_text()[-3000:]
            time.sleep(2)
        runtime = json.dumps({"env_vars": {"PUZZLE_RAY_CACHE": str(micro_cache),
                                           "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"],
                                           "RAY_USAGE_STATS_ENABLED": "0"}})
        cmd = [ray_bin, "job", "submit", "--address", "http://127.0.0.1:8272", "--working-dir", str(ROOT),
               "--runtime-env-json", runtime, "--", sys.executable, "-m", "puzzle_ray.workflows", str(config)]
        while True:  # the per-node job agent comes up a little after the dashboard
            job = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if "No available agent" not in job.stderr or time.time() > deadline:
                break
            time.sleep(3)
        assert job.returncode == 0, job.stdout[-3000:] + job.stderr[-3000:]
        assert "succeeded" in job.stdout
    finally:
        head.terminate()
        head.wait(timeout=90)
        log.close()


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status == 200
    except OSError:
        return False
