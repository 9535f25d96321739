"""MLflow logging of search results and frontiers (plain `mlflow` APIs).

Logs into the active run when there is one (the workflow's stage run); otherwise, when a tracking URI is
given, into a new run of `experiment`; otherwise nothing is logged.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from .run import SearchResult
from .sweep import Frontier

DEFAULT_EXPERIMENT = "puzzle-ray-search"


@contextmanager
def _run(tracking_uri: str | None, experiment: str | None, run_name: str) -> Iterator[str | None]:
    import mlflow

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    active = mlflow.active_run()
    if active is not None:
        yield active.info.run_id
        return
    if not tracking_uri:
        yield None
        return
    mlflow.set_experiment(experiment or DEFAULT_EXPERIMENT)
    with mlflow.start_run(run_name=run_name) as run:
        yield run.info.run_id


def log_frontier(frontier: Frontier, tracking_uri: str | None = None, experiment: str | None = None) -> str | None:
    """The frontier table, plot and one metric per feasible target. Returns the run id (None: not logged)."""
    import mlflow

    with _run(tracking_uri, experiment, "search-frontier") as run_id:
        if run_id is None:
            return None
        mlflow.log_table(frontier.columns(), artifact_file="search/frontier.json")
        mlflow.log_figure(frontier.figure(), "search/frontier.png")
        for step, row in enumerate(frontier.rows):
            if row["feasible"]:
                mlflow.log_metric("frontier_objective", row["objective"], step=step)
        spec = {"sweep": f"{frontier.spec.key}{frontier.spec.op}", "limits": [str(x) for x in frontier.spec.limits]}
        mlflow.log_dict(spec, "search/frontier_spec.json")
        return run_id


def log_search(result: SearchResult, tracking_uri: str | None = None, experiment: str | None = None,
               hidden_size: int | None = None) -> str | None:
    """The solutions (JSON), a per-layer table of every solution's variants and the best one's metrics."""
    import mlflow

    with _run(tracking_uri, experiment, "search") as run_id:
        if run_id is None:
            return None
        mlflow.log_dict(result.to_json(hidden_size), "search/solutions.json")
        table = {"layer": list(range(len(result.best.chosen)))}
        for s in result.solutions:
            table[f"solution_{s.rank}"] = s.chosen
        mlflow.log_table(table, artifact_file="search/architecture.json")
        best = result.best
        metrics = {"search_objective": best.objective, "search_solve_time_s": best.solve_time_s}
        if best.mip_gap is not None:
            metrics["search_mip_gap"] = best.mip_gap
        if best.batch_size is not None:
            metrics["search_batch_size"] = best.batch_size
        headline = {k: v for k, v in best.costs.items() if k.startswith("stats.") and "=" not in k}  # not constraints
        metrics.update({f"search_{k.split('.', 1)[1]}": v for k, v in headline.items()})
        mlflow.log_metrics(metrics)
        return run_id
