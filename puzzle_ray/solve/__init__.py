"""Architecture search: the Puzzle mixed-integer program (cvxpy + HiGHS), diverse solutions, frontier sweeps."""

from .._lazy import lazy_package

# name -> submodule, imported on first use (`puzzle_ray/_lazy.py`): importing one light module of this
# package (its cli.py, its config.py) does not import the heavy ones.
lazy_package(__name__, {
    ".config": ["SearchConfig"],
    ".constraints": ["Constraint", "ConstraintError", "Limit", "parse_constraint"],
    ".explain": ["Infeasibility", "explain_infeasible"],
    ".inputs": ["load_library"],
    ".run": ["BatchOutcome", "InfeasibleError", "SearchResult", "problems_for", "search", "solve_problem"],
    ".solution": ["Solution"],
    ".sweep": ["Frontier", "SweepSpec", "parse_sweep"],  # the sweep itself: puzzle_ray.solve.sweep.sweep
    ".tracking": ["log_frontier", "log_search"],
    ".verify": ["SolutionError", "verify_solution"],
})

__all__ = [
    "BatchOutcome",
    "Constraint",
    "Frontier",
    "ConstraintError",
    "InfeasibleError",
    "Infeasibility",
    "Limit",
    "SearchConfig",
    "SearchResult",
    "Solution",
    "SolutionError",
    "SweepSpec",
    "explain_infeasible",
    "load_library",
    "log_frontier",
    "log_search",
    "parse_constraint",
    "parse_sweep",
    "problems_for",
    "search",
    "solve_problem",
    "verify_solution",
]
