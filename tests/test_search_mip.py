"""The MIP against exhaustive enumeration on small random libraries; diversity; independent verification."""

import itertools
import math

import numpy as np
import pytest

from puzzle_ray.arch import PuzzleConfig
from puzzle_ray.solve import InfeasibleError, SearchConfig, SolutionError, search, verify_solution
from puzzle_ray.solve.synthetic import random_library, synthetic_library

TOKENS = 100  # random_library's scenario sequence_length


def figures(library, names, key, batch=None):
    """The child's total of `key` ('stats.x', 'metrics.x' or 'throughput'), computed here from scratch."""
    stat = "runtime_ms" if key == "throughput" else key.split(".", 1)[1]
    source = "metrics" if key.startswith("metrics.") else "stats"
    total = 0.0
    for i, name in enumerate(names):
        v = library.layers[i][name]
        table = v.metrics if source == "metrics" else {**v.stats, **v.stats.get("by_batch", {}).get(str(batch), {})}
        total += table[stat]
    if source == "stats":
        total += library.meta.get("non_block", {}).get(stat, 0.0)
    return batch * TOKENS * 1000 / total if key == "throughput" else total


def brute_force(library, objective, bounds, maximize=False, batch=None, exclude=(), min_diff=1):
    """Best (value, names) over every architecture; bounds: {key: (lower, upper)} absolute."""
    best = None
    for names in itertools.product(*[list(layer) for layer in library.layers]):
        if any(sum(a != b for a, b in zip(names, e)) < min_diff for e in exclude):
            continue
        ok = True
        for key, (lo, hi) in bounds.items():
            f = figures(library, names, key, batch)
            if (lo is not None and f < lo - 1e-9 * abs(lo)) or (hi is not None and f > hi + 1e-9 * abs(hi)):
                ok = False
                break
        if not ok:
            continue
        value = figures(library, names, objective)
        if best is None or (value > best[0] if maximize else value < best[0]):
            best = (value, names)
    return best


def parent_figure(library, key, batch=None):
    return figures(library, ["parent"] * library.num_layers, key, batch)


@pytest.mark.parametrize("seed", range(8))
def test_objective_equals_enumeration(seed):
    lib = random_library(num_layers=5, max_variants=4, seed=seed)
    mem, run = parent_figure(lib, "stats.memory_mib"), parent_figure(lib, "stats.runtime_ms")
    cases = [
        (["stats.memory_mib<=0.8*parent"], {"stats.memory_mib": (None, 0.8 * mem)}),
        (["stats.memory_mib<=0.9*parent", f"stats.runtime_ms<={0.85 * run}"],
         {"stats.memory_mib": (None, 0.9 * mem), "stats.runtime_ms": (None, 0.85 * run)}),
        ([f"{0.5 * mem}<=stats.memory_mib<={0.9 * mem}", "stats.num_params>=1e6"],
         {"stats.memory_mib": (0.5 * mem, 0.9 * mem), "stats.num_params": (1e6, None)}),
        (["stats.prefill_ms<=90%", "metrics.accuracy>=1.5"],
         {"stats.prefill_ms": (None, 0.9 * parent_figure(lib, "stats.prefill_ms")), "metrics.accuracy": (1.5, None)}),
    ]
    for constraints, bounds in cases:
        expected = brute_force(lib, "metrics.kl_div", bounds)
        config = SearchConfig(constraints=constraints)
        if expected is None:
            with pytest.raises(ValueError, match="no architecture"):
                search(lib, config)
            continue
        best = search(lib, config).best
        assert best.status == "optimal" and best.verified
        assert best.objective == pytest.approx(expected[0], rel=1e-6, abs=1e-9), constraints
        for key, (lo, hi) in bounds.items():
            f = figures(lib, best.chosen, key)
            assert (lo is None or f >= lo * (1 - 1e-6)) and (hi is None or f <= hi * (1 + 1e-6))


@pytest.mark.parametrize("seed", range(4))
def test_maximize_and_throughput_equal_enumeration(seed):
    lib = random_library(num_layers=4, max_variants=4, seed=100 + seed, batch_sizes=(8,))
    target = 1.1 * parent_figure(lib, "throughput", 8)
    expected = brute_force(lib, "metrics.accuracy", {"throughput": (target, None)}, maximize=True, batch=8)
    config = SearchConfig(objective="metrics.accuracy", maximize=True, constraints=["throughput>=1.1*parent"])
    if expected is None:
        pytest.skip("no architecture reaches the target on this seed")
    best = search(lib, config).best
    assert best.objective == pytest.approx(expected[0], rel=1e-6)
    assert best.costs["throughput>=1.1*parent"] == pytest.approx(figures(lib, best.chosen, "throughput", 8), rel=1e-9)
    assert best.costs["throughput>=1.1*parent"] >= target * (1 - 1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_diverse_solutions_are_the_sequential_optima(seed):
    lib = random_library(num_layers=5, max_variants=4, seed=200 + seed)
    lightest = sum(min(v.stats["memory_mib"] for v in layer.values()) for layer in lib.layers)
    heaviest = sum(max(v.stats["memory_mib"] for v in layer.values()) for layer in lib.layers)
    limit = 10.0 + (lightest + heaviest) / 2  # 10: the non-block part
    config = SearchConfig(constraints=[f"stats.memory_mib<={limit}"], num_solutions=3, min_diversity=2)
    result = search(lib, config)
    picked = []
    for s in result.solutions:
        expected = brute_force(lib, "metrics.kl_div", {"stats.memory_mib": (None, limit)}, exclude=picked, min_diff=2)
        assert s.objective == pytest.approx(expected[0], rel=1e-6, abs=1e-9)
        for e in picked:
            assert sum(a != b for a, b in zip(s.chosen, e)) >= 2
        assert s.verified
        picked.append(s.chosen)
    assert [s.rank for s in result.solutions] == list(range(len(result.solutions)))
    if len(result.solutions) < 3:  # the enumeration must agree that no further diverse solution exists
        assert brute_force(lib, "metrics.kl_div", {"stats.memory_mib": (None, limit)}, exclude=picked,
                           min_diff=2) is None
        assert "only" in result.note


def test_diversity_as_a_fraction_of_layers():
    lib = synthetic_library(num_layers=12, attention=(8, 2, "no_op"), ffn=(1.0, 0.5, "no_op"), batch_sizes=(64,),
                            seed=3)
    config = SearchConfig(constraints=["stats.memory_mib<=0.7*parent"], num_solutions=3, min_diversity=0.25)
    sols = search(lib, config).solutions
    assert len(sols) == 3
    for a, b in itertools.combinations(sols, 2):
        assert sum(x != y for x, y in zip(a.chosen, b.chosen)) >= 3  # ceil(0.25 * 12)
    assert sols[0].objective <= sols[1].objective <= sols[2].objective


def test_verification_recomputes_and_rejects_a_tampered_solution():
    lib = random_library(num_layers=4, max_variants=3, seed=7)
    config = SearchConfig(constraints=["stats.memory_mib<=0.9*parent"])
    best = search(lib, config).best
    verify_solution(best, lib, config)  # passes on the real thing
    heaviest = [max(layer, key=lambda n: layer[n].stats["memory_mib"]) for layer in lib.layers]
    tampered = type(best)(**{**best.__dict__, "chosen": heaviest})
    with pytest.raises(SolutionError):
        verify_solution(tampered, lib, config)
    lying = type(best)(**{**best.__dict__, "costs": {**best.costs, "stats.memory_mib<=0.9*parent": 1.0}})
    with pytest.raises(SolutionError, match="reported"):
        verify_solution(lying, lib, config)


def test_solution_block_configs_build_a_model_config_and_json_round_trips():
    lib = synthetic_library(num_layers=6, attention=(8, 1, "linear", "no_op"), ffn=(1.0, 0.25, "no_op"),
                            batch_sizes=(64,), hidden_size=512, num_attention_heads=8, intermediate_size=1024)
    best = search(lib, SearchConfig(constraints=["throughput>=1.3*parent", "stats.memory_mib<=0.8*parent"])).best
    config = PuzzleConfig(hidden_size=512, num_attention_heads=8, num_hidden_layers=6, block_configs=best.block_configs)
    assert [b.attention.kind for b in config.block_configs] == [b.attention.kind for b in best.blocks]
    data = best.to_json(hidden_size=512)
    assert set(data["chosen"]) == {f"layer_{i}" for i in range(6)}
    again = type(best).from_json(data)
    assert (again.chosen == best.chosen
            and [b.resolve(512) for b in again.blocks] == [b.resolve(512) for b in best.blocks])
    assert all(math.isfinite(v) for v in data["costs"].values())


def test_time_limit_without_a_solution_is_reported_not_hidden():
    lib = synthetic_library(num_layers=126, batch_sizes=(256,), seed=126)
    config = SearchConfig(constraints=["stats.memory_mib<=0.6*parent", "throughput>=1.6*parent"], time_limit_s=0.001)
    with pytest.raises(InfeasibleError, match="no solution found \\(HiGHS status: time_limit\\)"):
        search(lib, config)


def test_dominated_variants_are_left_out_of_single_solution_solves():
    from puzzle_ray.solve.dominance import undominated
    from puzzle_ray.solve.mip import solve_mip
    from puzzle_ray.solve.problem import build_problem

    lib = random_library(num_layers=6, max_variants=6, seed=0)
    config = SearchConfig(constraints=["stats.memory_mib<=0.8*parent"])
    problem = build_problem(lib, config, None)
    keep = undominated(problem, problem.rows)
    mem, kl = problem.values["stats.memory_mib"], problem.objective
    for i in range(problem.num_layers):
        cols = range(problem.offsets[i], problem.offsets[i + 1])
        kept = [c for c in cols if c in keep]
        assert kept, "every layer keeps a variant"
        for j in cols:  # a column is dropped exactly when some other one is no worse in both and better in one
            worse = any(mem[k] <= mem[j] and kl[k] <= kl[j] and (mem[k] < mem[j] or kl[k] < kl[j] or k < j)
                        for k in cols if k != j)
            assert (j not in keep) == worse, (i, j)
    assert len(keep) < problem.num_columns  # this library has dominated variants
    result = solve_mip(problem)
    limit = 0.8 * parent_figure(lib, "stats.memory_mib")
    expected = brute_force(lib, "metrics.kl_div", {"stats.memory_mib": (None, limit)})[0]
    assert set(result.columns) <= set(keep) and result.objective == pytest.approx(expected)


@pytest.mark.parametrize("seed", (303, 306, 311))  # libraries where the diverse model is pruned
def test_diverse_solves_prune_only_what_no_earlier_solution_needs(seed):
    """Diverse solves drop a dominated variant only when its dominator is unused by earlier solutions; the
    sequential optima still equal the enumeration's, on libraries with many dominated variants."""
    from puzzle_ray.solve.mip import build_model
    from puzzle_ray.solve.problem import build_problem

    lib = random_library(num_layers=5, max_variants=6, seed=seed)
    limit = 0.85 * parent_figure(lib, "stats.memory_mib")
    config = SearchConfig(constraints=["stats.memory_mib<=0.85*parent"], num_solutions=4, min_diversity=2)
    result = search(lib, config)
    picked = []
    for s in result.solutions:
        expected = brute_force(lib, "metrics.kl_div", {"stats.memory_mib": (None, limit)}, exclude=picked, min_diff=2)
        assert s.objective == pytest.approx(expected[0], rel=1e-6, abs=1e-9)
        picked.append(s.chosen)
    assert len(result.solutions) >= 2
    problem = build_problem(lib, config, None)
    exclude = [problem.columns_of(s.chosen) for s in result.solutions[:-1]]
    keep = set(build_model(problem, exclude=exclude, min_diversity=2).keep)
    taken = set(np.concatenate(exclude))
    mem, kl = problem.values["stats.memory_mib"], problem.objective
    for i in range(problem.num_layers):
        cols = range(problem.offsets[i], problem.offsets[i + 1])
        for j in cols:  # dropped exactly when a column no earlier solution takes is no worse and better somewhere
            worse = any(mem[k] <= mem[j] and kl[k] <= kl[j] and (mem[k] < mem[j] or kl[k] < kl[j] or k < j)
                        for k in cols if k != j and k not in taken)
            assert (j not in keep) == worse, (i, j)
    assert len(keep) < problem.num_columns  # the diverse model is pruned too


def test_a_process_whose_highs_runs_more_threads_still_solves_with_the_one_thread_default(tmp_path):
    """HiGHS sizes one thread pool per process and refuses a solve asking for another size; the default
    `threads: 1` must then use the pool there is (a fresh process, so no earlier test has sized it)."""
    import subprocess
    import sys

    script = (
        "from puzzle_ray.solve import SearchConfig, search\n"
        "from puzzle_ray.solve.synthetic import random_library\n"
        "lib = random_library(num_layers=6, max_variants=6, seed=0)\n"
        "c = ['stats.memory_mib<=0.8*parent']\n"
        "a = search(lib, SearchConfig(constraints=c, use_ray=False, highs_options={'threads': 2}))\n"
        "b = search(lib, SearchConfig(constraints=c, use_ray=False))\n"
        "assert [s.chosen for s in a.solutions] == [s.chosen for s in b.solutions]\n"
        "assert b.solutions[0].status == 'optimal' and b.solutions[0].objective == a.solutions[0].objective\n"
        "print('same')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0 and out.stdout.strip().endswith("same"), out.stderr[-2000:]
