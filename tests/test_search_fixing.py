"""Reduced-cost fixing (solve/fixing.py): the Lagrangian bound holds for every architecture, the rounded
incumbent is feasible, and solving with fixing gives the optimum solving without it gives."""

import itertools

import numpy as np
import pytest

from puzzle_ray.solve import SearchConfig
from puzzle_ray.solve import mip as mip_module
from puzzle_ray.solve.fixing import Bound, inequality_rows, lagrangian_bound, rounded_incumbent
from puzzle_ray.solve.mip import _solve, build_model, solve_mip
from puzzle_ray.solve.problem import build_problem
from puzzle_ray.solve.synthetic import random_library, synthetic_library

CASES = [
    (["stats.memory_mib<=0.8*parent"], False),
    (["stats.memory_mib<=0.9*parent", "stats.runtime_ms<=0.85*parent"], False),
    (["stats.memory_mib<=0.9*parent", "metrics.accuracy>=1.5"], False),
    (["stats.runtime_ms<=0.8*parent"], True),  # maximise accuracy
]


def lp_of(model, cost):
    return _solve(model, cost, np.ones(len(cost), dtype=bool), integer=False,
                  options=dict(output_flag=False, time_limit=10.0, threads=1))


@pytest.mark.parametrize("seed", (400, 402, 406, 409, 410, 412))  # seeds where every case is feasible
@pytest.mark.parametrize("case", range(len(CASES)))
def test_bound_and_reduced_costs_hold_for_every_architecture(seed, case):
    constraints, maximize = CASES[case]
    lib = random_library(num_layers=5, max_variants=5, seed=seed)
    objective = "metrics.accuracy" if maximize else "metrics.kl_div"
    config = SearchConfig(objective=objective, maximize=maximize, constraints=constraints)
    model = build_model(build_problem(lib, config, None))
    cost = -model.objective if maximize else model.objective
    lp = lp_of(model, cost)
    assert lp.status == "optimal"
    bound = lagrangian_bound(model, cost, lp.duals)
    G, h = inequality_rows(model)
    offsets = np.searchsorted(model.layer_of, np.arange(model.num_layers + 1))
    feasible = 0
    for columns in itertools.product(*(range(lo, hi) for lo, hi in zip(offsets[:-1], offsets[1:]))):
        columns = list(columns)
        if not (G[:, columns].sum(axis=1) <= h + 1e-9).all():
            continue
        feasible += 1
        # every feasible architecture costs at least LB plus the reduced costs of its columns
        assert cost[columns].sum() >= bound.value + bound.reduced[columns].sum() - 1e-9
    assert feasible > 0
    incumbent = rounded_incumbent(model, cost, lp.x)
    if incumbent is not None:
        assert (G[:, incumbent].sum(axis=1) <= h + 1e-9).all() and len(set(model.layer_of[incumbent])) == len(
            incumbent) == model.num_layers
        assert bound.keep(cost[incumbent].sum())[incumbent].all()  # the incumbent survives its own fixing


@pytest.mark.parametrize("constraints, solutions", [
    (["stats.memory_mib<=0.6*parent", "throughput>=1.6*parent"], 1),
    (["stats.memory_mib<=0.5*parent"], 1),
    (["stats.memory_mib<=0.85*parent", "stats.runtime_ms<=0.85*parent"], 3),
])
def test_fixing_prunes_columns_and_keeps_the_optimum(monkeypatch, constraints, solutions):
    """On an 80-layer synthetic library (Llama-70B shapes) the fixed MIP is much smaller than the model and its
    sequential optima equal those of the unfixed MIP (the bound replaced by one that fixes nothing)."""
    lib = synthetic_library(num_layers=80, batch_sizes=(256,), seed=80)
    config = SearchConfig(constraints=constraints)
    problem = build_problem(lib, config, 256)
    sizes = []
    real_solve = mip_module._solve

    def spy(model, cost, active, integer, options):
        sizes.append((len(active), int(active.sum())))
        return real_solve(model, cost, active, integer, options)

    def objectives():
        found, out = [], []
        for _ in range(solutions):
            result = solve_mip(problem, exclude=found, min_diversity=20, highs_options=config.highs_options)
            assert result.status == "optimal" and result.mip_gap <= 1e-6
            found.append(result.columns)
            out.append(result.objective)
        return out

    monkeypatch.setattr(mip_module, "_solve", spy)
    fixed = objectives()
    assert min(kept for _, kept in sizes) < 0.5 * max(n for n, _ in sizes)
    monkeypatch.setattr(mip_module, "lagrangian_bound",
                        lambda model, cost, duals: Bound(-np.inf, np.zeros(len(cost))))
    assert fixed == pytest.approx(objectives(), rel=1e-6)
