"""Exact CP-SAT model of rematerialisation with the order of first executions free
(formulations/checkpointing.md, section 6).

Stage t (0..n-1) ends with the t-th first execution, of the node v with x[t,v] = 1; before it run
the stage's recomputations, each once, in an order the model chooses. Per (stage t, value i) in
i's window (the stages after i can first run and up to the last stage at which one of its
descendants can first run) there are R[t,i] (recomputed in stage t), S[t,i] (kept from stage
t-1), a position p[t,i] in 0..n-1 (after the positions of its recomputed inputs) and an end
position e[t,i] in 0..n. The stage's new node sits at n. A kept value occupies [0, e], a
recomputed one [p, e], the new node [n, n]; one cumulative constraint per stage bounds the sum of
sizes by the budget (or by the peak variable).
"""

from __future__ import annotations

from collections.abc import Sequence

from ortools.sat.python import cp_model

from monet_opt.families.remat.problem import RematProblem
from monet_opt.families.remat.stages import kept_into_stages
from monet_opt.solving.common import Deadline, OutOfTime, SolverOptions, SolveStats, SolveStatus
from monet_opt.solving.cpsat_runner import run_cpsat

FREE_ORDER_MAX_NODES = 60
"""Largest graph on which `monet checkpoint graph` searches the free order by default: measured in
formulations/checkpointing.md, section 6 (random DAGs of 40 nodes proven optimal in 13 s, 60 nodes
improved on the fixed-order optimum within 60 s; a 100-node layered DAG at 80 % answered worse than
the fixed-order model alone in the same 60 s)."""


def relatives(problem: RematProblem) -> tuple[list[set[int]], list[set[int]]]:
    """(ancestors, descendants) of every node."""
    n = problem.n
    ancestors: list[set[int]] = [set() for _ in range(n)]
    for v in range(n):
        for p in problem.preds[v]:
            ancestors[v] |= ancestors[p] | {p}
    descendants: list[set[int]] = [set() for _ in range(n)]
    for v in range(n):
        for a in ancestors[v]:
            descendants[a].add(v)
    return ancestors, descendants


def stage_windows(problem: RematProblem) -> tuple[list[int], list[int], list[int]]:
    """(earliest, latest, last_needed): the first and last stage at which each node can first run
    (after all its ancestors, before all its descendants), and the last stage in which its value
    can be needed (the latest first run of any descendant; -1 for a sink)."""
    n = problem.n
    ancestors, descendants = relatives(problem)
    earliest = [len(ancestors[v]) for v in range(n)]
    latest = [n - 1 - len(descendants[v]) for v in range(n)]
    last_needed = [max((latest[d] for d in descendants[v]), default=-1) for v in range(n)]
    return earliest, latest, last_needed


def free_order_pairs(problem: RematProblem) -> int:
    """Number of (stage, value) pairs of the free-order model."""
    earliest, _, last_needed = stage_windows(problem)
    return sum(max(0, last_needed[i] - earliest[i]) for i in range(problem.n))


class FreeOrderModel:
    """The free-order stage model (formulations/checkpointing.md, section 6): the order of first
    executions (x), the recompute and keep variables with their positions, the dependency and keep
    rules, each stage's memory, the objective."""

    def __init__(self, problem: RematProblem, budget: int | None, deadline: Deadline | None = None) -> None:
        """Budget None: minimise the peak. Raises OutOfTime when `deadline` passes while building."""
        self.problem = problem
        self.windows = stage_windows(problem)  # earliest, latest, last_needed stage of each value
        self.model = cp_model.CpModel()
        self._order()
        self._recomputations()
        self._dependencies(deadline)
        self._memory(budget, deadline)
        self.recompute_cost = sum(problem.cost[i] * r for (t, i), r in self.R.items())
        self.model.minimize(self.peak if budget is None else self.recompute_cost)

    def _order(self) -> None:
        """x[t, v]: v runs first in stage t; one new value per stage, each value once, after its inputs."""
        problem, m, n = self.problem, self.model, self.problem.n
        earliest, latest, _ = self.windows
        self.x = {(t, v): m.new_bool_var(f"x{t}_{v}") for v in range(n) for t in range(earliest[v], latest[v] + 1)}
        x = self.x
        for t in range(n):
            m.add_exactly_one(x[t, v] for v in range(n) if (t, v) in x)
        for v in range(n):
            m.add_exactly_one(x[t, v] for t in range(earliest[v], latest[v] + 1))
        stage_of = [sum(t * x[t, v] for t in range(earliest[v], latest[v] + 1)) for v in range(n)]
        for v in range(n):
            for p in problem.preds[v]:
                m.add(stage_of[v] >= stage_of[p] + 1)

    def _recomputations(self) -> None:
        """R[t, i], S[t, i] (recomputed, kept in stage t) after i's first run, and each
        recomputation's position in its stage."""
        problem, m, n, x = self.problem, self.model, self.problem.n, self.x
        earliest, latest, last_needed = self.windows
        # ran_before[t, i]: i first ran in a stage before t
        self.R: dict[tuple[int, int], cp_model.IntVar] = {}
        self.S: dict[tuple[int, int], cp_model.IntVar] = {}
        R, S = self.R, self.S
        for i in range(n):
            for t in range(earliest[i] + 1, last_needed[i] + 1):
                R[t, i] = m.new_bool_var(f"R{t}_{i}")
                S[t, i] = m.new_bool_var(f"S{t}_{i}")
                ran_before = sum(x[s, i] for s in range(earliest[i], min(t, latest[i] + 1)))
                m.add(R[t, i] + S[t, i] <= ran_before)
        # position of each recomputation in its stage (0..n-1; the new node sits at n): after the
        # recomputations of its inputs, 0 when absent
        self.position = {(t, i): m.new_int_var(0, n - 1, f"p{t}_{i}") for (t, i) in R}
        for (t, k), at in self.position.items():
            m.add(at == 0).only_enforce_if(~R[t, k])
            for j in problem.preds[k]:
                if (t, j) in R:
                    m.add(at >= self.position[t, j] + 1).only_enforce_if(R[t, k])

    def _dependencies(self, deadline: Deadline | None) -> None:
        """Inputs at hand for every new and recomputed value; kept values come from the stage before;
        a value is recomputed or kept only to be read in its stage or kept for the next."""
        problem, m, n, x, R, S = self.problem, self.model, self.problem.n, self.x, self.R, self.S
        succ = problem.succs
        for t in range(n):
            if deadline is not None:
                deadline.check()
            for v in range(n):
                if (t, v) in x:
                    for p in problem.preds[v]:
                        m.add(R[t, p] + S[t, p] >= x[t, v]) if (t, p) in R else m.add(x[t, v] == 0)
            for k in range(n):
                if (t, k) not in R:
                    continue
                for j in problem.preds[k]:
                    m.add(R[t, k] <= R[t, j] + S[t, j]) if (t, j) in R else m.add(R[t, k] == 0)
            for i in range(n):
                if (t, i) not in S:
                    continue
                previous = [R[t - 1, i], S[t - 1, i]] if (t - 1, i) in R else []
                new_before = [x[t - 1, i]] if (t - 1, i) in x else []
                m.add(S[t, i] <= sum(previous) + sum(new_before))
                # a value is recomputed or kept only to be read in this stage or kept for the next
                readers_recomputed = [R[t, j] for j in succ[i] if (t, j) in R and j > i]
                readers_new = [x[t, j] for j in succ[i] if (t, j) in x]
                carried = [S[t + 1, i]] if (t + 1, i) in S else []
                useful = sum(readers_recomputed) + sum(readers_new) + sum(carried)
                m.add(R[t, i] <= useful)
                m.add(S[t, i] <= useful)

    def _memory(self, budget: int | None, deadline: Deadline | None) -> None:
        """Each stage's memory within the budget (or the peak variable): a cumulative over the new
        value and the copies, and a linear cut at the new value's position."""
        problem, m, n, x, R, S = self.problem, self.model, self.problem.n, self.x, self.R, self.S
        succ = problem.succs
        floor = self.peak_floor = max(problem.size[v] + sum(problem.size[p] for p in problem.preds[v]) for v in range(n))
        self.peak = m.new_int_var(floor, max(floor, sum(problem.size)), "peak") if budget is None else None
        capacity = self.peak if budget is None else budget
        for t in range(n):
            if deadline is not None:
                deadline.check()
            intervals, demands = [], []
            for v in range(n):
                if (t, v) in x:
                    intervals.append(m.new_optional_fixed_size_interval_var(n, 1, x[t, v], f"new{t}_{v}"))
                    demands.append(problem.size[v])
            position = {i: self.position[t, i] for i in range(n) if (t, i) in R}
            for i, start in position.items():
                end = m.new_int_var(0, n, f"e{t}_{i}")
                m.add(end >= start).only_enforce_if(R[t, i])
                for j in succ[i]:
                    if j in position:
                        m.add(end >= position[j]).only_enforce_if(R[t, j])
                    if (t, j) in x:
                        m.add(end >= n).only_enforce_if(x[t, j])
                if (t + 1, i) in S:
                    m.add(end >= n).only_enforce_if(S[t + 1, i])
                length = m.new_int_var(1, n + 1, f"l{t}_{i}")
                intervals.append(m.new_optional_interval_var(start, length, end + 1, R[t, i], f"r{t}_{i}"))
                intervals.append(m.new_optional_interval_var(0, end + 1, end + 1, S[t, i], f"s{t}_{i}"))
                demands += [problem.size[i], problem.size[i]]
            m.add_cumulative(intervals, demands, capacity)
            # redundant cut at the new node's position: the new node and every other value kept
            # for stage t+1 are live there (S - x: the new node kept on is counted once)
            m.add(sum(problem.size[v] * x[t, v] for v in range(n) if (t, v) in x)
                  + sum(problem.size[i] * (S[t + 1, i] - (x[t, i] if (t, i) in x else 0))
                        for i in range(n) if (t + 1, i) in S) <= capacity)

    def hint(self, sequence: Sequence[int]) -> None:
        """Hint the model with a schedule (any order of first executions) in its stage form."""
        recompute, kept, order = free_stages(self.problem, sequence)
        for (t, v), var in self.x.items():
            self.model.add_hint(var, order[t] == v)
        for (t, i), var in self.R.items():
            self.model.add_hint(var, i in recompute[t])
            self.model.add_hint(self.position[t, i], recompute[t].get(i, 0))
        for (t, i), var in self.S.items():
            self.model.add_hint(var, i in kept[t])

    def schedule(self, solver: cp_model.CpSolver) -> list[int]:
        n = self.problem.n
        order = [next(v for v in range(n) if (t, v) in self.x and solver.value(self.x[t, v])) for t in range(n)]
        recompute = [sorted((i for i in range(n) if (t, i) in self.R and solver.value(self.R[t, i])),
                            key=lambda i, t=t: (solver.value(self.position[t, i]), i)) for t in range(n)]
        return [i for t in range(n) for i in [*recompute[t], order[t]]]


def free_stages(problem: RematProblem, sequence: Sequence[int]
                ) -> tuple[list[dict[int, int]], list[set[int]], list[int]]:
    """(R, S, order) of a schedule: order[t] the t-th node to run for the first time, R[t] the
    nodes recomputed between the (t-1)-th and the t-th first execution (node -> its rank among
    them: its position in the model), S[t] the values whose copy is still needed when stage t
    begins."""
    n = problem.n
    order: list[int] = []
    seen = [False] * n
    stage_of_pos = []
    for v in sequence:
        if not seen[v]:
            seen[v] = True
            order.append(v)
            stage_of_pos.append(len(order) - 1)
        else:
            stage_of_pos.append(len(order))
    recompute: list[dict[int, int]] = [{} for _ in range(n)]
    first = set()
    for pos, v in enumerate(sequence):
        if v in first:
            stage = recompute[stage_of_pos[pos]]
            stage.setdefault(v, len(stage))
        first.add(v)
    return recompute, kept_into_stages(problem, sequence, stage_of_pos), order


def _out_of_time(deadline: Deadline) -> SolveStats:
    return SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ())


def solve_free_order(problem: RematProblem, budget: int | None, options: SolverOptions, deadline: Deadline,
                     hint: Sequence[int] | None = None) -> tuple[list[int] | None, SolveStats]:
    """Least total cost under `budget` (None: the least peak) over schedules whose first executions
    follow any topological order: (schedule or None, stats). The cost objective and bound include
    the n first executions."""
    try:
        model = FreeOrderModel(problem, budget, deadline)
    except OutOfTime:
        return None, _out_of_time(deadline)
    model.hint(hint if hint is not None else list(range(problem.n)))
    solver, stats = run_cpsat(model.model, options, deadline, offset=0 if budget is None else sum(problem.cost))
    return (model.schedule(solver) if stats.objective is not None else None), stats
