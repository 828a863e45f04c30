"""Exact CP-SAT model of the abstract rematerialisation problem (formulations/checkpointing.md).

Stage t (0..n-1) runs node t and, before it in index order, recomputations of earlier nodes. Per
(stage t, node i < t) with t <= last_descendant(i) -- outside that band a value can never be needed
again, so no variable exists -- there are two booleans, R[t,i] (recomputed in stage t) and S[t,i]
(kept from stage t-1), and an end position e[t,i] in 0..t. Memory: in each stage, positions
0..t are a time axis; a kept value occupies [0, e], a recomputed one [i, e], node t occupies [t, t],
and e reaches its last reader's position in the stage (or t if it is kept for the next stage).
One cumulative constraint per stage bounds the sum of sizes by the budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from ortools.sat.python import cp_model

from monet_opt.solvers.common import SolverOptions, SolveStats, run_cpsat
from monet_opt.solvers.remat.problem import RematProblem
from monet_opt.solvers.remat.stages import sequence_to_stages, stages_to_sequence


SUBSOLVERS = ("max_lp", "quick_restart", "default_lp", "core", "reduced_costs", "pseudo_costs", "no_lp")
"""CP-SAT full workers by priority: the LP-bounding worker proves optimality, quick restarts find schedules."""


class _Model:
    def __init__(self, problem: RematProblem, budget: int | None) -> None:
        self.problem = problem
        n, last = problem.n, problem.last_descendant
        m = self.model = cp_model.CpModel()
        self.R: dict[tuple[int, int], cp_model.IntVar] = {}
        self.S: dict[tuple[int, int], cp_model.IntVar] = {}
        for t in range(n):
            for i in range(t):
                if t <= last[i]:
                    self.R[t, i] = m.NewBoolVar(f"R{t}_{i}")
                    self.S[t, i] = m.NewBoolVar(f"S{t}_{i}")
                    m.Add(self.R[t, i] + self.S[t, i] <= 1)
        R, S = self.R, self.S
        succ = problem.succs
        for t in range(n):
            for k in [k for k in range(t) if (t, k) in R] + [t]:
                for j in problem.preds[k]:
                    have = [R[t, j], S[t, j]]
                    if k == t:
                        m.AddBoolOr(have)
                    else:
                        m.Add(R[t, k] <= sum(have))
            for i in range(t):
                if (t, i) not in S:
                    continue
                if i < t - 1:
                    m.Add(S[t, i] <= R[t - 1, i] + S[t - 1, i])
                # a value is recomputed or kept only to be read in this stage or kept for the next
                uses = [R[t, j] for j in succ[i] if j < t and (t, j) in R]
                carried = [S[t + 1, i]] if (t + 1, i) in S else []
                reads_t = 1 if t in succ[i] else 0
                m.Add(R[t, i] <= sum(uses) + sum(carried) + reads_t)
                m.Add(S[t, i] <= sum(uses) + sum(carried) + reads_t)
        # no schedule peaks below max_v (m_v + inputs' sizes): a valid lower bound for the peak variable
        floor = max(problem.size[v] + sum(problem.size[p] for p in problem.preds[v]) for v in range(n))
        self.peak = m.NewIntVar(floor, max(floor, sum(problem.size)), "peak") if budget is None else None
        capacity = self.peak if budget is None else budget
        for t in range(n):
            intervals, demands = [m.NewIntervalVar(t, 1, t + 1, f"node{t}")], [problem.size[t]]
            for i in range(t):
                if (t, i) not in R:
                    continue
                end = m.NewIntVar(0, t, f"e{t}_{i}")
                m.Add(end >= i).OnlyEnforceIf(R[t, i])
                for j in succ[i]:
                    if j == t:
                        m.Add(end >= t).OnlyEnforceIf(R[t, i])
                        m.Add(end >= t).OnlyEnforceIf(S[t, i])
                    elif j < t and (t, j) in R:
                        m.Add(end >= j).OnlyEnforceIf(R[t, j])
                if (t + 1, i) in S:
                    m.Add(end >= t).OnlyEnforceIf(S[t + 1, i])
                intervals.append(m.NewOptionalIntervalVar(i, end - i + 1, end + 1, R[t, i], f"r{t}_{i}"))
                intervals.append(m.NewOptionalIntervalVar(0, end + 1, end + 1, S[t, i], f"s{t}_{i}"))
                demands += [problem.size[i], problem.size[i]]
            m.AddCumulative(intervals, demands, capacity)
            # Redundant linear cut (exact at node t's position): node t, its inputs and every value
            # kept for stage t+1 are live there. It puts memory into the LP relaxation.
            inputs = set(problem.preds[t])
            m.Add(problem.size[t] + sum(problem.size[i] for i in inputs)
                  + sum(problem.size[i] * S[t + 1, i] for i in range(t) if i not in inputs and (t + 1, i) in S)
                  <= capacity)
        self.recompute_cost = sum(problem.cost[i] * r for (t, i), r in R.items())
        m.Minimize(self.peak if budget is None else self.recompute_cost)

    def hint(self, sequence: Sequence[int]) -> None:
        recompute, kept = sequence_to_stages(self.problem, sequence)
        for (t, i), var in self.R.items():
            self.model.AddHint(var, i in recompute[t])
        for (t, i), var in self.S.items():
            self.model.AddHint(var, i in kept[t])

    def schedule(self, solver: cp_model.CpSolver) -> list[int]:
        recompute = [[i for i in range(t) if (t, i) in self.R and solver.Value(self.R[t, i])] for t in range(self.problem.n)]
        return stages_to_sequence(recompute)


def solve_cpsat(problem: RematProblem, budget: int, options: SolverOptions,
                hint: Sequence[int] | None = None) -> tuple[list[int] | None, SolveStats]:
    """Minimum total compute cost under `budget`: (schedule or None, stats). The objective and bound
    include the n first executions."""
    model = _Model(problem, budget)
    if hint is not None:
        model.hint(hint)
    solver, stats = run_cpsat(model.model, options, SUBSOLVERS, offset=sum(problem.cost))
    schedule = model.schedule(solver) if stats.objective is not None else None
    return schedule, stats


def min_peak_cpsat(problem: RematProblem, options: SolverOptions) -> tuple[list[int] | None, SolveStats]:
    """The smallest peak memory of any schedule (recomputation unlimited): the smallest feasible budget."""
    model = _Model(problem, None)
    model.hint(list(range(problem.n)))
    solver, stats = run_cpsat(model.model, options, SUBSOLVERS)
    return (model.schedule(solver) if stats.objective is not None else None), stats
