"""Infeasible problems are explained: what each constraint reaches alone, and which constraints conflict."""

import pytest

from puzzle_ray.library.record import Library, Variant
from puzzle_ray.solve import InfeasibleError, SearchConfig, search


def lib_from(rows_per_layer):
    """rows_per_layer: [{name: (stats dict, kl)}] -> Library (the first variant of each layer is the parent)."""
    layers = []
    for layer in rows_per_layer:
        layers.append({n: Variant(n, dict(s), {"kl_div": kl}, None, {"is_parent": k == 0})
                       for k, (n, (s, kl)) in enumerate(layer.items())})
    return Library(layers, {"scenario": {"batch_size": 4, "sequence_length": 10}})


def knapsack(num_layers=3):
    # memory and params move together; runtime the other way
    return lib_from([{
        "big": ({"memory_mib": 10, "num_params": 10, "runtime_ms": 10}, 0.0),
        "small": ({"memory_mib": 2, "num_params": 2, "runtime_ms": 9}, 1.0),
        "fast": ({"memory_mib": 8, "num_params": 8, "runtime_ms": 1}, 2.0),
    } for _ in range(num_layers)])


def explain(lib, constraints):
    with pytest.raises(InfeasibleError) as info:
        search(lib, SearchConfig(constraints=constraints))
    (outcome,) = info.value.outcomes
    return outcome.infeasibility, str(info.value)


def test_unreachable_constraint_reports_the_best_value_alone():
    why, message = explain(knapsack(), ["stats.memory_mib<=5", "stats.runtime_ms<=29"])
    by_name = {r.constraint: r for r in why.constraints}
    mem = by_name["stats.memory_mib<=5"]
    assert not mem.feasible_alone and mem.best_alone == 6 and mem.reachable == [6, 30]
    assert by_name["stats.runtime_ms<=29"].feasible_alone
    assert "stats.memory_mib<=5 cannot be met by any architecture on its own" in message
    assert "best 6" in message and "batch size 4" in message
    assert why.conflicts == []


def test_conflicting_pair_is_named():
    why, message = explain(knapsack(), ["stats.memory_mib<=12", "stats.num_params>=20", "stats.runtime_ms<=30"])
    assert all(r.feasible_alone for r in why.constraints)
    assert why.conflicts == [["stats.memory_mib<=12", "stats.num_params>=20"]]
    assert "stats.memory_mib<=12 and stats.num_params>=20 conflict" in message


def test_throughput_reach_is_in_tokens_per_second():
    # 4 sequences x 10 tokens = 40 tokens; fastest runtime 3 x 1 ms -> 40 / 0.003 s = 13,333 tokens/s
    why, message = explain(knapsack(), ["throughput>=20000"])
    (reach,) = why.constraints
    assert reach.best_alone == pytest.approx(40 * 1000 / 3)
    assert reach.reachable[0] == pytest.approx(40 * 1000 / 30) and reach.lower == 20000
    assert "throughput>=20000 cannot be met" in message


def test_three_constraints_that_conflict_only_together():
    # one layer, three variants; each constraint excludes one variant: any two leave one, all three leave none
    lib = lib_from([{
        "a": ({"x": 1, "y": 0, "z": 0}, 0.0),
        "b": ({"x": 0, "y": 1, "z": 0}, 1.0),
        "c": ({"x": 0, "y": 0, "z": 1}, 2.0),
    }])
    cons = ["stats.x<=0.5", "stats.y<=0.5", "stats.z<=0.5", "stats.x<=2"]
    why, message = explain(lib, cons)
    assert why.conflicts == [["stats.x<=0.5", "stats.y<=0.5", "stats.z<=0.5"]]  # stats.x<=2 is not part of it
    assert "conflict: each can be met alone, not all at once" in message


def test_range_constraint_feasibility_alone_is_exact():
    # totals reachable: 2..30 but only in steps the variants allow; 3 layers of {10, 2, 8}: 25 is not reachable
    why, _ = explain(knapsack(), ["25<=stats.memory_mib<=25"])
    (reach,) = why.constraints
    assert not reach.feasible_alone and reach.reachable == [6, 30]
