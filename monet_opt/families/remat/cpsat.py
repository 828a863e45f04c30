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
from dataclasses import dataclass, replace

from ortools.sat.python import cp_model

from monet_opt.families.remat.problem import RematProblem
from monet_opt.families.remat.stages import sequence_to_stages, stages_to_sequence
from monet_opt.solving.common import Deadline, OutOfTime, SolverOptions, SolveStats, SolveStatus
from monet_opt.solving.contract import CostUnderBudget, MinimumPeak
from monet_opt.solving.cpsat_runner import run_cpsat


MAX_MODEL_PAIRS = 120_000
"""Largest band (stage, value) pairs the exact model is built for. Memory grows with the band: at
102 k pairs (500-node layered DAG) CP-SAT runs in a few GB; at 399 k (1000 nodes) its presolve alone
needs over 9 GB and 200 s (formulations/checkpointing.md, section 2, large instances)."""


def band_pairs(problem: RematProblem, window: int | None = None) -> int:
    """Number of (stage, value) pairs of the model, exact (window None) or restricted to `window`."""
    ends = stage_horizon(problem, window)
    return sum(max(0, ends[i] - i) for i in range(problem.n))


def stage_horizon(problem: RematProblem, window: int | None, extra: Sequence[int] | None = None) -> list[int]:
    """Last stage in which each value may be live. Exact: its last descendant (later, nothing can
    need it). Restricted to `window`: at most `window` stages after its last direct reader, and at
    least as far as the stages in which the schedule `extra` keeps or recomputes it."""
    last = problem.last_descendant
    if window is None:
        return list(last)
    ends = [min(last[i], max(problem.succs[i], default=-1) + window) for i in range(problem.n)]
    if extra is not None:
        recompute, kept = sequence_to_stages(problem, extra)
        for t in range(problem.n):
            for i in recompute[t] | kept[t]:
                ends[i] = max(ends[i], t)
    return ends


def restriction_window(problem: RematProblem, max_pairs: int) -> int | None:
    """None when the exact model has at most `max_pairs` pairs, else the largest window (>= 0)
    whose restricted model does."""
    if band_pairs(problem) <= max_pairs:
        return None
    low, high = 0, problem.n
    while low < high:
        middle = (low + high + 1) // 2
        if band_pairs(problem, middle) <= max_pairs:
            low = middle
        else:
            high = middle - 1
    return low


def _out_of_time(deadline: Deadline) -> SolveStats:
    return SolveStats(SolveStatus.UNKNOWN, None, None, deadline.elapsed_s(), None, None, ())


@dataclass(frozen=True)
class Window:
    """Stages first..stop-1 of a schedule whose other stages stay as they are (large-neighbourhood
    search, `lns.py`): `kept_in` the values that may be kept into stage `first` (those the schedule
    keeps into it, and node first-1), `kept_out` the values that must be kept into stage `stop`."""

    first: int
    stop: int
    kept_in: frozenset[int]
    kept_out: frozenset[int]


class _Model:
    """The exact stage model (formulations/checkpointing.md, sections 1-3): the recompute and keep
    variables per (stage, value), the dependency and keep rules, each stage's memory, the objective."""

    def __init__(self, problem: RematProblem, target: CostUnderBudget | MinimumPeak,
                 horizon: Sequence[int] | None = None, deadline: Deadline | None = None,
                 window: Window | None = None, soft_budget: bool = False) -> None:
        """Raises OutOfTime when `deadline` passes while the model is built (large models take
        seconds: 11 s for the 500-node layered DAG's 102k pairs). With a `window`, only its stages
        have variables; the boundary values are constants (`Window`). `soft_budget`: a stage may
        exceed the budget by `over[t]` (memory units); the objective is then the total excess
        first, the recomputation cost second (the feasibility phase's model, `feasibility.py`)."""
        self.problem = problem
        budget = target.budget if isinstance(target, CostUnderBudget) else None
        stages = range(problem.n) if window is None else range(window.first, window.stop)
        self.model = cp_model.CpModel()
        self.stages, self.budget = stages, budget
        self._variables(list(problem.last_descendant) if horizon is None else horizon, deadline)
        # kept_out: the values the stages after the window find kept into its stop (constants)
        self.kept_out = frozenset() if window is None else window.kept_out
        self.boundary = None if window is None else window.stop
        self._dependencies(window, deadline)
        self._memory(soft_budget, deadline)
        R, m = self.R, self.model
        self.recompute_cost = sum(problem.cost[i] * r for (t, i), r in R.items())
        # one unit of excess outweighs any recomputation: the weight exceeds the cost of recomputing
        # every value in every stage of the model (a value may be recomputed in many stages)
        self.excess_weight = sum(problem.cost[i] for (t, i) in R) + 1
        if soft_budget:
            self.excess = sum(self.over.values())
            m.minimize(self.excess_weight * self.excess + self.recompute_cost)
        else:
            m.minimize(self.peak if budget is None else self.recompute_cost)

    def _variables(self, last: Sequence[int], deadline: Deadline | None) -> None:
        """R[t, i] (value i recomputed in stage t) and S[t, i] (kept into stage t), for the values
        that may still be needed at stage t (`last`: the last stage that may need each)."""
        m = self.model
        self.R: dict[tuple[int, int], cp_model.IntVar] = {}
        self.S: dict[tuple[int, int], cp_model.IntVar] = {}
        self.E: dict[tuple[int, int], cp_model.IntVar] = {}  # last position of a value's copy in a stage
        for t in self.stages:
            if deadline is not None:
                deadline.check()
            for i in range(t):
                if t <= last[i]:
                    self.R[t, i] = m.new_bool_var(f"R{t}_{i}")
                    self.S[t, i] = m.new_bool_var(f"S{t}_{i}")
                    m.add(self.R[t, i] + self.S[t, i] <= 1)

    def _dependencies(self, window: Window | None, deadline: Deadline | None) -> None:
        """A recomputation has its inputs at hand; a value is kept only from the stage before, and
        recomputed or kept only when read in the stage or kept for the next."""
        problem, m, R, S = self.problem, self.model, self.R, self.S
        kept_out, boundary = self.kept_out, self.boundary
        succ = problem.succs
        for t in self.stages:
            if deadline is not None:
                deadline.check()
            for k in [k for k in range(t) if (t, k) in R] + [t]:
                for j in problem.preds[k]:
                    if (t, j) not in R:  # restricted model: j is gone by stage t, so k cannot be recomputed
                        m.add(R[t, k] == 0)
                        continue
                    have = [R[t, j], S[t, j]]
                    if k == t:
                        m.add_bool_or(have)
                    else:
                        m.add(R[t, k] <= sum(have))
            for i in range(t):
                if (t, i) not in S:
                    continue
                if i < t - 1 and (t - 1, i) in S:
                    m.add(S[t, i] <= R[t - 1, i] + S[t - 1, i])
                elif i < t - 1 and (window is None or t > window.first or i not in window.kept_in):
                    m.add(S[t, i] == 0)
                # a value is recomputed or kept only to be read in this stage or kept for the next
                uses = [R[t, j] for j in succ[i] if j < t and (t, j) in R]
                carried = [S[t + 1, i]] if (t + 1, i) in S else []
                if t + 1 == boundary and i in kept_out:
                    carried = [1]
                    if i < t:
                        m.add(R[t, i] + S[t, i] >= 1)
                reads_t = 1 if t in succ[i] else 0
                m.add(R[t, i] <= sum(uses) + sum(carried) + reads_t)
                m.add(S[t, i] <= sum(uses) + sum(carried) + reads_t)

    def _memory(self, soft_budget: bool, deadline: Deadline | None) -> None:
        """Each stage's memory within the budget (or the peak variable; with `soft_budget`, the
        budget plus the stage's excess): a cumulative over its values' copies, and a linear cut."""
        problem, m, R, S = self.problem, self.model, self.R, self.S
        stages, budget, kept_out, boundary, succ = self.stages, self.budget, self.kept_out, self.boundary, problem.succs
        n = problem.n
        # no schedule peaks below max_v (m_v + inputs' sizes): a valid lower bound for the peak variable
        floor = self.peak_floor = max(problem.size[v] + sum(problem.size[p] for p in problem.preds[v]) for v in range(n))
        self.peak = m.new_int_var(floor, max(floor, sum(problem.size)), "peak") if budget is None else None
        self.over = {t: m.new_int_var(0, sum(problem.size), f"over{t}") for t in stages} if soft_budget else {}
        for t in stages:
            if deadline is not None:
                deadline.check()
            capacity = self.peak if budget is None else budget + (self.over[t] if soft_budget else 0)
            intervals, demands = [m.new_interval_var(t, 1, t + 1, f"node{t}")], [problem.size[t]]
            for i in range(t):
                if (t, i) not in R:
                    continue
                end = self.E[t, i] = m.new_int_var(0, t, f"e{t}_{i}")
                m.add(end >= i).only_enforce_if(R[t, i])
                for j in succ[i]:
                    if j == t:
                        m.add(end >= t).only_enforce_if(R[t, i])
                        m.add(end >= t).only_enforce_if(S[t, i])
                    elif j < t and (t, j) in R:
                        m.add(end >= j).only_enforce_if(R[t, j])
                if (t + 1, i) in S:
                    m.add(end >= t).only_enforce_if(S[t + 1, i])
                if t + 1 == boundary and i in kept_out:
                    m.add(end >= t)
                intervals.append(m.new_optional_interval_var(i, end - i + 1, end + 1, R[t, i], f"r{t}_{i}"))
                intervals.append(m.new_optional_interval_var(0, end + 1, end + 1, S[t, i], f"s{t}_{i}"))
                demands += [problem.size[i], problem.size[i]]
            m.add_cumulative(intervals, demands, capacity)
            # Redundant linear cut (exact at node t's position): node t, its inputs and every value
            # kept for stage t+1 are live there. It puts memory into the LP relaxation.
            inputs = set(problem.preds[t])
            kept_on = [problem.size[i] for i in kept_out if t + 1 == boundary and i < t and i not in inputs]
            m.add(problem.size[t] + sum(problem.size[i] for i in inputs) + sum(kept_on)
                  + sum(problem.size[i] * S[t + 1, i] for i in range(t) if i not in inputs and (t + 1, i) in S)
                  <= capacity)

    def hint(self, sequence: Sequence[int]) -> None:
        """Hint the stage form of `sequence` (every variable: CP-SAT completes a partial hint only
        within a few conflicts, which large models exceed)."""
        self.hint_stages(*sequence_to_stages(self.problem, sequence))

    def hint_stages(self, recompute: Sequence[set[int]], kept: Sequence[set[int]]) -> None:
        """Hint R and S from the stage sets, each end position at the least its constraints allow,
        and the peak (or each stage's excess over the budget) the stage memory this accounting gives."""
        problem, m = self.problem, self.model
        peak = 0
        for t in self.stages:
            level = [0] * (t + 2)  # difference array over the stage's positions 0..t
            level[t] += problem.size[t]
            level[t + 1] -= problem.size[t]
            for i in range(t):
                if (t, i) not in self.R:
                    continue
                present = i in recompute[t] or i in kept[t]
                end = i if i in recompute[t] else 0
                for j in problem.succs[i]:
                    if j == t and present or j < t and (t, j) in self.R and j in recompute[t]:
                        end = max(end, j)
                if t + 1 < problem.n and i in kept[t + 1] or t + 1 == self.boundary and i in self.kept_out:
                    end = t
                m.add_hint(self.R[t, i], i in recompute[t])
                m.add_hint(self.S[t, i], i in kept[t])
                m.add_hint(self.E[t, i], end)
                if present:
                    level[i if i in recompute[t] else 0] += problem.size[i]
                    level[end + 1] -= problem.size[i]
            running = stage_peak = 0
            for d in level[:-1]:
                running += d
                stage_peak = max(stage_peak, running)
            if self.over:
                m.add_hint(self.over[t], max(0, stage_peak - self.budget))
            peak = max(peak, stage_peak)
        if self.peak is not None:
            m.add_hint(self.peak, max(peak, self.peak_floor))

    def schedule(self, solver: cp_model.CpSolver) -> list[int]:
        recompute = [[i for i in range(t) if (t, i) in self.R and solver.value(self.R[t, i])] for t in range(self.problem.n)]
        return stages_to_sequence(recompute)


def _restricted_stats(stats: SolveStats, trivial_bound: float) -> SolveStats:
    """A restricted model proves nothing about the whole problem: optimal becomes feasible,
    infeasible becomes unknown, and the bound is `trivial_bound` (valid for every schedule)."""
    status = {SolveStatus.OPTIMAL: SolveStatus.FEASIBLE, SolveStatus.INFEASIBLE: SolveStatus.UNKNOWN}.get(
        stats.status, stats.status)
    return replace(stats, status=status, bound=trivial_bound,
                   incumbents=tuple(replace(i, bound=trivial_bound) for i in stats.incumbents))


def solve_cpsat(problem: RematProblem, budget: int, options: SolverOptions, deadline: Deadline,
                hint: Sequence[int] | None = None, max_pairs: int = MAX_MODEL_PAIRS
                ) -> tuple[list[int] | None, SolveStats, int | None]:
    """Minimum total compute cost under `budget`: (schedule or None, stats, window). The objective
    and bound include the n first executions; no schedule when the deadline passes while the model
    is built. When the exact model would exceed `max_pairs`, the
    model is restricted to the largest window that fits (returned; None means exact) plus the
    hint's own stages, so the hint stays feasible, and the bound is the trivial sum of costs."""
    window = restriction_window(problem, max_pairs)
    try:
        model = _Model(problem, CostUnderBudget(budget),
                       None if window is None else stage_horizon(problem, window, hint), deadline)
    except OutOfTime:
        return None, _out_of_time(deadline), window
    if hint is not None:
        model.hint(hint)
    solver, stats = run_cpsat(model.model, options, deadline, offset=sum(problem.cost))
    schedule = model.schedule(solver) if stats.objective is not None else None
    if window is not None:
        stats = _restricted_stats(stats, float(sum(problem.cost)))
    return schedule, stats, window


def min_peak_cpsat(problem: RematProblem, options: SolverOptions, deadline: Deadline,
                   max_pairs: int = MAX_MODEL_PAIRS) -> tuple[list[int] | None, SolveStats]:
    """The smallest peak memory of any schedule (recomputation unlimited): the smallest feasible
    budget. Above `max_pairs` the model is restricted (see `solve_cpsat`): the peak found is
    achievable, and the bound is the local one (a node with its inputs)."""
    window = restriction_window(problem, max_pairs)
    try:
        model = _Model(problem, MinimumPeak(), None if window is None else stage_horizon(problem, window), deadline)
    except OutOfTime:
        return None, _out_of_time(deadline)
    model.hint(list(range(problem.n)))
    solver, stats = run_cpsat(model.model, options, deadline)
    if window is not None:
        stats = _restricted_stats(stats, float(model.peak_floor))
    return (model.schedule(solver) if stats.objective is not None else None), stats


def least_excess_cpsat(problem: RematProblem, budget: int, start: Sequence[int], options: SolverOptions,
                       deadline: Deadline, horizon_window: int | None = None) -> tuple[list[int] | None, SolveStats]:
    """For a budget no known schedule fits: the stage model with a soft budget (each stage may
    exceed it; least total excess first, then least cost), started from `start` (any schedule; its
    stage form is a complete hint, so the search improves it from the first second) and stopped at
    the first schedule with no excess. `horizon_window`: values live at most this many stages after
    their last direct reader (`stage_horizon`, extended to `start`'s own stages; None: the exact
    model). Returns the schedule of least excess found (None only when the deadline passes while
    the model is built) and the stats: objective and bound in model units of w x excess +
    recomputation cost, w (`_Model.excess_weight`) above any recomputation cost of the model. The
    search also stops when its bound reaches w: every schedule of the model's space then exceeds
    the budget (status INFEASIBLE: over every schedule for the exact model, over the horizon's
    schedules for a restricted one)."""
    horizon = None if horizon_window is None else stage_horizon(problem, horizon_window, start)
    try:
        model = _Model(problem, CostUnderBudget(budget), horizon, deadline, soft_budget=True)
    except OutOfTime:
        return None, _out_of_time(deadline)
    model.hint(start)
    weight = model.excess_weight
    solver, stats = run_cpsat(model.model, options, deadline, stop_below=weight, stop_at_bound=weight)
    if stats.bound is not None and stats.bound >= weight:
        stats = replace(stats, status=SolveStatus.INFEASIBLE)
    return (model.schedule(solver) if stats.objective is not None else None), stats
