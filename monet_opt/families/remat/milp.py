"""Checkmate's MILP (Jain et al., MLSys 2020) for the abstract rematerialisation problem, in PuLP.

The reference that cross-checks the CP-SAT model: same stage schedules, Checkmate's memory
accounting. Per stage t and position k (formulations/checkpointing.md):

    U[t,0]   = sum_i m_i S[t,i] + m_0 R[t,0]
    U[t,k+1] = U[t,k] - sum_{i in preds(k) + {k}} m_i FREE[t,i,k] + m_{k+1} R[t,k+1]
    FREE[t,i,k] = R[t,k] and not S[t+1,i] and not R[t,j] for every reader j of i with k < j <= t
    U[t,k] <= budget

CBC by default (it ships with PuLP); HiGHS when it is installed.
"""

from __future__ import annotations

import warnings

import pulp

from monet_opt.families.remat.problem import RematProblem
from monet_opt.families.remat.stages import stages_to_sequence
from monet_opt.solving.common import Deadline, Incumbent, SolverOptions, SolveStats, SolveStatus


def milp_solver(options: SolverOptions, time_limit_s: float, name: str | None = None) -> pulp.LpSolver:
    """HiGHS when available (or asked for), else CBC; with the time limit, the options' threads and seed."""
    time_limit_s = max(time_limit_s, 0.01)
    highs = pulp.HiGHS(msg=False, timeLimit=time_limit_s, threads=options.workers,
                       random_seed=options.seed) if hasattr(pulp, "HiGHS") else None
    if name in (None, "highs") and highs is not None and highs.available():
        return highs
    with warnings.catch_warnings():  # PuLP 3.3 deprecates its bundled-CBC class; it is still the default solver
        warnings.simplefilter("ignore")
        return pulp.PULP_CBC_CMD(msg=False, timeLimit=time_limit_s, threads=options.workers,
                                 options=[f"randomSeed {options.seed + 1}"])


def _out_of_time(deadline: Deadline) -> SolveStats:
    return SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ())


def solve_milp(problem: RematProblem, budget: int, options: SolverOptions, deadline: Deadline,
               solver_name: str | None = None) -> tuple[list[int] | None, SolveStats]:
    n, last, succ, m = problem.n, problem.last_descendant, problem.succs, problem.size
    lp = pulp.LpProblem("checkmate", pulp.LpMinimize)
    R: dict[tuple[int, int], pulp.LpVariable | int] = {}
    S: dict[tuple[int, int], pulp.LpVariable | int] = {}
    for t in range(n):
        if deadline.expired():  # building the MILP of a large graph takes minutes
            return None, _out_of_time(deadline)
        R[t, t] = 1
        for i in range(t):
            if t <= last[i]:
                R[t, i] = lp.add_variable(f"R_{t}_{i}", cat="Binary")
                S[t, i] = lp.add_variable(f"S_{t}_{i}", cat="Binary")
                lp += R[t, i] + S[t, i] <= 1

    def r(t: int, i: int) -> pulp.LpVariable | int:
        return R.get((t, i), 0)

    def s(t: int, i: int) -> pulp.LpVariable | int:
        return S.get((t, i), 0)

    lp += pulp.lpSum(problem.cost[i] * v for (t, i), v in R.items())
    for t in range(n):
        if deadline.expired():  # building the MILP of a large graph takes minutes
            return None, _out_of_time(deadline)
        for k in range(t + 1):
            if (t, k) not in R:
                continue
            for j in problem.preds[k]:
                lp += r(t, k) <= r(t, j) + s(t, j)
        for i in range(t):
            if (t, i) in S and i < t - 1:
                lp += S[t, i] <= r(t - 1, i) + s(t - 1, i)
        usage = pulp.lpSum(m[i] * s(t, i) for i in range(t)) + m[0] * r(t, 0)
        for k in range(t + 1):
            if deadline.expired():  # one stage of a 1000-node graph alone takes seconds
                return None, _out_of_time(deadline)
            if k > 0:
                usage = usage + m[k] * r(t, k)
            lp += usage <= budget
            if (t, k) not in R:
                continue
            freed = []
            for i in set(problem.preds[k]) | {k}:
                later = [j for j in succ[i] if k < j <= t and (t, j) in R]
                keep = s(t + 1, i)
                free = lp.add_variable(f"F_{t}_{i}_{k}", cat="Binary")
                lp += free <= r(t, k)
                if not isinstance(keep, int):
                    lp += free <= 1 - keep
                for j in later:
                    lp += free <= 1 - R[t, j]
                hazards = (1 - r(t, k)) + keep + pulp.lpSum(R[t, j] for j in later)
                lp += free + hazards >= 1
                freed.append(m[i] * free)
            usage = usage - pulp.lpSum(freed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lp.solve(milp_solver(options, deadline.remaining_s(), solver_name))
    elapsed = deadline.elapsed_s()
    solution = lp.sol_status
    if solution in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible):
        recompute = [[i for i in range(t) if (t, i) in R and pulp.value(R[t, i]) > 0.5] for t in range(n)]
        objective = float(round(pulp.value(lp.objective)))
        optimal = solution == pulp.LpSolutionOptimal
        status = SolveStatus.OPTIMAL if optimal else SolveStatus.FEASIBLE
        stats = SolveStats(status, objective, objective if optimal else None, elapsed, None, elapsed,
                           (Incumbent(elapsed, objective, objective if optimal else float("nan")),))
        return stages_to_sequence(recompute), stats
    status = SolveStatus.INFEASIBLE if solution == pulp.LpSolutionInfeasible else SolveStatus.UNKNOWN
    return None, SolveStats(status, None, None, elapsed, None, None, ())
