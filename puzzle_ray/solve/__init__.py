"""Architecture search: the Puzzle mixed-integer program (cvxpy + HiGHS), diverse solutions, frontier sweeps."""

from .config import SearchConfig
from .constraints import Constraint, ConstraintError, Limit, parse_constraint
from .explain import Infeasibility, explain_infeasible
from .inputs import load_library
from .run import BatchOutcome, InfeasibleError, SearchResult, problems_for, search, solve_problem
from .solution import Solution
from .sweep import Frontier, SweepSpec, parse_sweep  # the sweep itself: puzzle_ray.solve.sweep.sweep
from .tracking import log_frontier, log_search
from .verify import SolutionError, verify_solution

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
