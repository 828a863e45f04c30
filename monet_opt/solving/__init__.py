"""What every decision family is solved through: the contract (`contract.py`: one `solve()`, one
`Result`, the referee step), the registry of families (`registry.py`), options, the deadline and
GA settings (`common.py`), budgets, the CP-SAT runner and the shared NSGA-II."""

from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, SolverOptions, SolveStats, SolveStatus, heuristic_stats
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, ExitCode, Family, Measurement, Method, MethodKind, MinimumPeak, Proposal, Result, SolverBug,
    Verdict, solve,
)

__all__ = ["Budget", "Claim", "CostUnderBudget", "Deadline", "ExitCode", "Family", "Measurement", "Method",
           "MethodKind", "MinimumPeak", "Proposal", "Result", "SolveStats", "SolveStatus", "SolverBug",
           "SolverOptions", "Verdict", "heuristic_stats", "solve"]
