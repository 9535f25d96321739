"""Solve time and optimality of the Puzzle MIP (cvxpy + HiGHS) on the published library and synthetic ones.

    python benchmarks/mip_scaling.py            # 3 repeats per scenario, medians
    python benchmarks/mip_scaling.py --quick    # 1 repeat (smoke test)

(a) The published Llama-3.3-70B library (80 layers x 16 variants, H100, batch 256, sequence 1200), read in place
    from ../shared/reference/nvlabs-puzzle-llama-3.3-70b-library/ (never copied; skipped when absent), under its
    authors' three scenarios. Target: each solve proven optimal in < 1 s, model building included.
(b) Synthetic 80 x 54 and 126 x 54 libraries (Llama-70B shapes, 6 attention x 9 FFN variants). Target: < 5 s.
(c) Model building: the vectorised formulation used by puzzle_ray.solve (one variable vector, sparse matrices)
    against a naive one (one variable per layer, a Python sum per constraint).

"wall" is the whole `search()` call: validation, model building, cvxpy canonicalisation, HiGHS, and the
independent verification of every solution; "cpu" is this process's CPU time for it (less sensitive to other
load on a shared machine); "per sol" is wall / solutions, which the targets apply to. Medians of `--repeats`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from puzzle_ray.solve import SearchConfig, load_library, problems_for, search
from puzzle_ray.solve.synthetic import synthetic_library

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "nvlabs-puzzle-llama-3.3-70b-library"

AUTHORS_SCENARIOS = [
    # name, constraints, num_solutions, min_diversity
    ("80 GB + 6000 tok/s", ["stats.memory_mib<=80000", f"stats.runtime_ms<={256 * 1200 / 6000 * 1000:g}"], 1, 1),
    ("40 GB", ["stats.memory_mib<=40000"], 1, 1),
    ("85% parent x3 div20", ["stats.memory_mib<=0.85*parent", "stats.runtime_ms<=0.85*parent"], 3, 20),
]
SYNTHETIC_SCENARIOS = [
    ("60% mem, 1.6x thr", ["stats.memory_mib<=0.6*parent", "throughput>=1.6*parent"], 1, 1),
    ("50% memory", ["stats.memory_mib<=0.5*parent"], 1, 1),
    ("85% parent x3 div20", ["stats.memory_mib<=0.85*parent", "stats.runtime_ms<=0.85*parent"], 3, 20),
]


def run(library, constraints, num_solutions, min_diversity, repeats):
    config = SearchConfig(constraints=constraints, num_solutions=num_solutions, min_diversity=min_diversity,
                          use_ray=False)
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = search(library, config)
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def table(title, rows, target_s):
    print(f"\n{title}")
    header = f"{'scenario':<22} {'sols':>4} {'wall s':>7} {'cpu s':>6} {'per sol s':>9} {'max HiGHS s':>11} " \
             f"{'build s':>7} {'status':>8} {'max gap':>8} {'objective':>10}  target"
    print(header)
    print("-" * len(header))
    for name, wall, cpu, result in rows:
        sols = result.solutions
        per = wall / len(sols)
        worst = max(s.solve_time_s for s in sols)
        build = max(s.build_time_s for s in sols)
        status = "optimal" if all(s.status == "optimal" for s in sols) else "/".join(sorted({s.status for s in sols}))
        gap = max(s.mip_gap or 0.0 for s in sols)
        ok = "ok" if per < target_s and status == "optimal" else "MISSED"
        print(f"{name:<22} {len(sols):>4} {wall:>7.3f} {cpu:>6.3f} {per:>9.3f} {worst:>11.3f} {build:>7.3f} "
              f"{status:>8} "
              f"{gap:>8.1e} {sols[0].objective:>10.4f}  {ok} (< {target_s:g} s per solution)")


def naive_build_time(problem) -> float:
    """Model building + canonicalisation of a loop-built model (one Variable per layer), without solving."""
    import cvxpy as cp

    start = time.perf_counter()
    xs, cons = [], []
    for i in range(problem.num_layers):
        lo, hi = problem.offsets[i], problem.offsets[i + 1]
        x = cp.Variable(hi - lo, boolean=True)
        xs.append((x, lo, hi))
        cons.append(cp.sum(x) == 1)
    for row in problem.rows:
        v = problem.values[row.column]
        total = sum(v[lo:hi] @ x for x, lo, hi in xs)
        if row.upper is not None:
            cons.append(total <= row.upper - problem.constant[row.column])
        if row.lower is not None:
            cons.append(total >= row.lower - problem.constant[row.column])
    objective = cp.Minimize(sum(problem.objective[lo:hi] @ x for x, lo, hi in xs))
    cp.Problem(objective, cons).get_problem_data(cp.HIGHS)
    return time.perf_counter() - start


def vectorised_build_time(problem) -> float:
    import cvxpy as cp
    import scipy.sparse as sp

    start = time.perf_counter()
    n, L = problem.num_columns, problem.num_layers
    x = cp.Variable(n, boolean=True)
    assign = sp.csr_matrix((np.ones(n), (problem.layer_of, np.arange(n))), shape=(L, n))
    V = np.stack([problem.values[r.column] for r in problem.rows])
    b = np.array([r.upper - problem.constant[r.column] for r in problem.rows])
    cp.Problem(cp.Minimize(problem.objective @ x), [assign @ x == 1, V @ x <= b]).get_problem_data(cp.HIGHS)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repeat per scenario (smoke test)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats per scenario (median reported)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats

    warm = synthetic_library(num_layers=4, attention=(8, "no_op"), ffn=(1.0, "no_op"), batch_sizes=(256,))
    search(warm, SearchConfig(constraints=["stats.memory_mib<=0.5*parent"]))  # first-call costs (imports, HiGHS)

    if REFERENCE.is_dir():
        library = load_library(REFERENCE, num_attention_heads=64)
        rows = [(name, *run(library, c, n, d, repeats)) for name, c, n, d in AUTHORS_SCENARIOS]
        table("(a) published Llama-3.3-70B library, 80 layers x 16 variants (batch 256, seq 1200)", rows, 1.0)
    else:
        print(f"\n(a) skipped: {REFERENCE} not present (the published library is read in place, never copied)")

    problems = {}
    for layers in (80, 126):
        library = synthetic_library(num_layers=layers, batch_sizes=(256,), seed=layers)
        rows = [(name, *run(library, c, n, d, repeats)) for name, c, n, d in SYNTHETIC_SCENARIOS]
        table(f"(b) synthetic library, {layers} layers x 54 variants (batch 256)", rows, 5.0)
        problems[layers] = problems_for(library, SearchConfig(constraints=SYNTHETIC_SCENARIOS[2][1]))[0]

    print("\n(c) model building + canonicalisation, no solve (median of repeats)")
    print(f"{'library':<16} {'vectorised s':>12} {'naive loop s':>12} {'ratio':>6}")
    for layers, problem in problems.items():
        vec = statistics.median(vectorised_build_time(problem) for _ in range(repeats))
        naive = statistics.median(naive_build_time(problem) for _ in range(repeats))
        print(f"{f'{layers} x 54':<16} {vec:>12.3f} {naive:>12.3f} {naive / vec:>6.1f}")


if __name__ == "__main__":
    main()
