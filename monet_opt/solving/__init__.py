"""Decision families (remat, checkpoint, allocation) behind one contract: see `contract.py`."""

from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, SolverOptions, SolveStats, SolveStatus, heuristic_stats
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, ExitCode, Family, Measurement, Method, MethodKind, MinimumPeak, Proposal, Result, SolverBug,
    Verdict, solve,
)

__all__ = ["Budget", "Claim", "CostUnderBudget", "Deadline", "ExitCode", "Family", "Measurement", "Method",
           "MethodKind", "MinimumPeak", "Proposal", "Result", "SolveStats", "SolveStatus", "SolverBug",
           "SolverOptions", "Verdict", "heuristic_stats", "solve"]
