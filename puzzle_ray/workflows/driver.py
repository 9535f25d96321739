"""The workflow driver: validate, plan, connect to Ray, run the stages with MLflow records, summarise.

    puzzle-ray run workflows/tiny-cpu.yaml [--from STAGE | --only STAGE] [--dry-run]
    python -m puzzle_ray.workflows workflows/tiny-cpu.yaml        # the Ray job entrypoint
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import mlflow

from ..configs import content_hash
from ..store import ArtifactStore, StoreError
from ..ui import console
from .config import WorkflowConfig, load_config
from .engine import Runner, StageStatus
from .preflight import preflight, work_estimate
from .stages import STAGES
from .summary import headline_metrics, summary_markdown, summary_table

SUMMARY_FILE = "puzzle-summary.md"


def run_workflow(config: WorkflowConfig | str | Path, only: str | None = None, start: str | None = None,
                 until: str | None = None, dry_run: bool = False) -> dict[str, StageStatus]:
    """Run (or resume) the workflow. Raises ConfigError / StoreError / StageFailed with a clear message."""
    cfg = config if isinstance(config, WorkflowConfig) else load_config(config)
    try:
        store = ArtifactStore(cfg.store_url)
    except StoreError:
        if not dry_run:
            raise
        store = None  # planning a cluster run from a laptop: the store (s3://...) need not be reachable here
    runner = Runner(STAGES, cfg, store)
    runner.selected(only, start, until)  # validates --only / --from / --until
    reachable = "" if store else ", not reachable here"
    console.print(runner.plan_table(f"{cfg.name}: plan (store {cfg.store_url}{reachable})"))
    if dry_run:
        console.print(work_estimate(cfg))
        return runner.status
    preflight(cfg, store)  # every cheap check, before any expensive work
    owner = {"workflow": cfg.name}
    with store.writer(owner, on_wait=lambda msg: console.print(f"[yellow]{msg}[/]")):
        # read the stage records again under the lock: a run that held it may have finished stages meanwhile
        return _run(cfg, store, Runner(STAGES, cfg, store), only, start, until)


def _run(cfg: WorkflowConfig, store: ArtifactStore, runner: Runner, only: str | None, start: str | None,
         until: str | None) -> dict[str, StageStatus]:
    """The run itself, under the store's writer lock (so no other driver writes the same stages meanwhile)."""
    from ..cluster import connect
    from .tracking import WorkflowTracking, tracking_uri

    connect(cfg.ray.num_cpus, cfg.ray.num_gpus, cfg.ray.object_store_mb)
    tracking = WorkflowTracking(tracking_uri(cfg.mlflow.tracking_uri), cfg.mlflow.experiment, cfg.name,
                                content_hash(runner.keys))
    parent_run = tracking.start(cfg.model_dump(mode="json"))
    # start_run(run_id=...) refuses a run of another experiment than the process's active one (set by an
    # earlier set_experiment, e.g. in a notebook or a test session): make the workflow's experiment active.
    mlflow.set_experiment(experiment_id=tracking.experiment_id)

    stage_runs: dict[str, str] = {}

    @contextmanager
    def stage_context(name: str, key: str):
        """A nested MLflow run per stage; fluent logging inside the stage goes to it, Ray workers use its id."""
        stage_runs[name] = run_id = tracking.stage_run(name, key)
        with mlflow.start_run(run_id=run_id, nested=True):
            yield run_id

    def on_stage(st: StageStatus) -> None:
        name = st.stage.name
        if st.state == "running":
            console.rule(f"[bold]{name}[/]  {st.stage.describe(cfg)}")
        elif st.state == "cached":
            run_id = tracking.stage_run(name, st.key, cached=True)
            tracking.log_stage(run_id, None, st.output.key_figures())
            console.print(f"[cyan]✓ {name}[/] finished earlier (key {st.key[:10]})")
        elif st.state in ("done", "failed"):
            mark = "[green]✓" if st.state == "done" else "[red]✗"
            console.print(f"{mark} {name}[/] {st.seconds:.1f} s")
            if name in stage_runs:
                tracking.log_stage(stage_runs[name], st.seconds, st.output.key_figures() if st.output else {})

    ok = False
    try:
        with mlflow.start_run(run_id=parent_run):
            mlflow.log_dict(cfg.model_dump(mode="json"), "workflow_config.json")
            runner.run(only, start, until, on_stage=on_stage, stage_context=stage_context,
                       workflow_run_id=parent_run)
            ok = True
    finally:
        tracking.finish(ok)
        console.print(runner.plan_table(f"{cfg.name}: {'done' if ok else 'stopped'}"))
    if runner.status["evaluate"].output is not None and not (only or until):
        console.print(summary_table(cfg, runner.status))
        md = summary_markdown(cfg, runner.status)
        store.write_bytes(f"runs/{cfg.name}/summary.md", md.encode())
        Path(SUMMARY_FILE).write_text(md)
        tracking.client.log_text(parent_run, md, "summary.md")
        tracking.log_result(headline_metrics(runner.status["evaluate"].output.eval_report), md,
                            result_tags(runner.status))
    return runner.status


def result_tags(status: dict[str, StageStatus]) -> dict[str, str]:
    """Where the workflow's product is: the child's folder and, when published, its registered model."""
    tags = {}
    if status["distill"].output is not None:
        tags["puzzle_ray.child_dir"] = status["distill"].output.model_dir
    published = status["publish"].output
    if published is not None and published.published:
        tags["puzzle_ray.registered_model"] = published.model_uri
        tags["puzzle_ray.registered_version"] = str(published.version)
    return tags
