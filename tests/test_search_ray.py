"""Batch sizes solved as Ray tasks (the best feasible wins), unfit batch sizes skipped, MLflow logging."""

import copy

import pytest

from puzzle_ray.solve import InfeasibleError, SearchConfig, search
from puzzle_ray.solve.sweep import parse_sweep, sweep
from puzzle_ray.solve.synthetic import random_library, synthetic_library
from puzzle_ray.solve.tracking import log_frontier, log_search

BATCHES = (16, 256)


def kv_heavy_library():
    """Small hidden size, long sequences: the KV cache dominates memory, so batch size is a real trade-off
    (bigger batches: more throughput, more memory)."""
    return synthetic_library(num_layers=6, attention=(8, 2, 1, "no_op"), ffn=(1.0, 0.5, "no_op"), batch_sizes=BATCHES,
                             hidden_size=1024, num_attention_heads=8, intermediate_size=2816, seed=0)


def serial_objectives(lib, config):
    """Each batch size solved alone, in this process: {batch: objective or None}."""
    out = {}
    for b in BATCHES:
        try:
            out[b] = search(lib, config.model_copy(update={"batch_sizes": [b], "use_ray": False})).best.objective
        except InfeasibleError:
            out[b] = None
    return out


@pytest.mark.integration
def test_ray_tasks_pick_the_best_batch_size(ray_cluster):
    """One Ray task per batch size (the first call starts the workers: each imports torch via puzzle_ray)."""
    lib = kv_heavy_library()
    winners = set()
    for memory, throughput in ((800, 150_000), (2000, 450_000)):  # batch 16 wins; 16 is infeasible, 256 wins
        config = SearchConfig(constraints=[f"stats.memory_mib<={memory}", f"throughput>={throughput}"], use_ray=True)
        expected = serial_objectives(lib, config)
        result = search(lib, config)
        assert [o.batch_size for o in result.per_batch] == list(BATCHES)
        for o in result.per_batch:
            assert (o.solutions[0].objective if o.feasible else None) == pytest.approx(expected[o.batch_size])
            assert o.feasible or "no architecture" in o.infeasibility.message
        feasible = {b: v for b, v in expected.items() if v is not None}
        assert result.batch_size == min(feasible, key=feasible.get)
        assert result.best.objective == pytest.approx(min(feasible.values()))
        assert result.best.batch_size == result.batch_size and result.best.verified
        winners.add(result.batch_size)
    assert winners == set(BATCHES)


def test_equal_objectives_prefer_the_larger_batch():
    lib = random_library(num_layers=4, max_variants=3, seed=3, batch_sizes=(4, 8))
    for layer in lib.layers:  # same stats at both batch sizes: same optimum
        for v in layer.values():
            v.stats["by_batch"]["8"] = dict(v.stats["by_batch"]["4"])
    result = search(lib, SearchConfig(constraints=["stats.memory_mib<=0.9*parent"], use_ray=False))
    assert result.per_batch[0].solutions[0].objective == result.per_batch[1].solutions[0].objective
    assert result.batch_size == 8


def test_batch_sizes_that_do_not_fit_are_skipped_and_reported():
    lib = random_library(num_layers=3, max_variants=3, seed=4, batch_sizes=(4, 8))
    lib.meta["non_block"]["by_batch"] = {"4": {}, "8": {"fits": False}}
    result = search(lib, SearchConfig(use_ray=False))
    assert result.batch_size == 4
    skipped = next(o for o in result.per_batch if o.batch_size == 8)
    assert not skipped.feasible and "does not fit" in skipped.note
    lib.meta["non_block"]["by_batch"]["4"] = {"fits": False}
    with pytest.raises(InfeasibleError, match="does not fit"):
        search(lib, SearchConfig(use_ray=False))


def test_relative_limits_use_one_reference_batch():
    """'parent' is the parent's figure at the scenario's first batch size, whatever batch is solved."""
    lib = random_library(num_layers=4, max_variants=3, seed=5, batch_sizes=(4, 8))
    key = "stats.memory_mib<=1*parent"

    def parent_at(batch):
        return sum(layer["parent"].stats["by_batch"][batch]["memory_mib"] for layer in lib.layers) + 10.0

    for parent_batch, reference in ((None, "4"), (8, "8")):
        try:
            result = search(lib, SearchConfig(constraints=[key], parent_batch_size=parent_batch, use_ray=False))
        except InfeasibleError:
            pytest.fail("the parent itself meets the limit at its reference batch size")
        limits = [o.solutions[0].limits[key][1] for o in result.per_batch if o.feasible]
        assert limits and all(v == pytest.approx(parent_at(reference)) for v in limits)
        assert any(o.batch_size == int(reference) and o.feasible for o in result.per_batch)


def test_frontier_and_solutions_logged_to_mlflow(mlflow_uri, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    lib = synthetic_library(num_layers=6, attention=(8, 1, "no_op"), ffn=(1.0, 0.5, "no_op"), batch_sizes=(64,))
    config = SearchConfig(constraints=["stats.memory_mib<=0.9*parent"])
    frontier = sweep(lib, config, parse_sweep("throughput>=1*parent:3*parent", points=3), show_progress=False)
    assert [r["constraint"] for r in frontier.rows] == [f"throughput>={x:g}*parent" for x in (1, 2, 3)]
    run_id = log_frontier(frontier, tracking_uri=mlflow_uri, experiment="search-tests")
    assert run_id is not None and mlflow.active_run() is None  # its own run, closed
    client = MlflowClient(mlflow_uri)
    names = {a.path for a in client.list_artifacts(run_id, "search")}
    assert {"search/frontier.json", "search/frontier.png", "search/frontier_spec.json"} <= names
    feasible = [r for r in frontier.rows if r["feasible"]]
    history = client.get_metric_history(run_id, "frontier_objective")
    assert [m.value for m in history] == pytest.approx([r["objective"] for r in feasible])

    mlflow.set_experiment("search-tests")
    with mlflow.start_run() as run:  # inside an active run (the workflow's stage run), log into it
        result = search(lib, config)
        assert log_search(copy.deepcopy(result)) == run.info.run_id
    names = {a.path for a in client.list_artifacts(run.info.run_id, "search")}
    assert {"search/solutions.json", "search/architecture.json"} <= names
    assert client.get_run(run.info.run_id).data.metrics["search_objective"] == pytest.approx(result.best.objective)
    assert log_search(result) is None  # no active run and no tracking URI: nothing logged
