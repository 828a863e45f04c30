"""Exact CP-SAT model of allocation and scheduling (formulations/allocation.md).

A flexible job shop: per task a start S_t and one optional fixed-size interval per eligible core
(presence x[t,c], exactly one present), NoOverlap per core; a task that holds a DRAM link holds it
for its option's bus cycles from its start, NoOverlap per link; precedence S_j >= E_i (+ the
transfer delay when the two tasks sit on different cores); makespan M >= every end. Objectives:
M, energy (sum of the chosen options' energies + transfers), or energy under M <= epsilon.
Redundant constraints carry bounds into the search: per-resource load <= M, and M >= the
one-machine bound of each DRAM link with heads and tails (`bounds.link_bound_cycles`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ortools.sat.python import cp_model

from monet_opt.families.allocation.bounds import link_bound_cycles
from monet_opt.families.allocation.problem import AllocationProblem, Schedule
from monet_opt.solving.common import Deadline, SolverOptions, SolveStats
from monet_opt.solving.cpsat_runner import run_cpsat


SUBSOLVERS = ("max_lp", "default_lp", "quick_restart", "core", "reduced_costs", "pseudo_costs", "no_lp")
"""CP-SAT full workers by priority: the LP worker carries the load bounds, the default search finds schedules."""


def energy_scale(problem: AllocationProblem) -> int:
    """Energy coefficients are integers: energy_pj * scale, rounded. The scale is the largest power
    of ten up to 1000 that keeps the largest option energy below 1e9 (pJ resolution or finer)."""
    largest = max((o.energy_pj for options in problem.options for o in options.values()), default=0.0)
    scale = 1000
    while scale > 1 and largest * scale > 1e9:
        scale //= 10
    return scale


@dataclass(frozen=True)
class Target:
    """What to minimise: 'makespan' or 'energy'; optional caps on the other objective."""

    minimise: str
    makespan_cap: int | None = None
    energy_cap: int | None = None  # scaled units


class _Model:
    def __init__(self, problem: AllocationProblem, target: Target) -> None:
        self.problem = p = problem
        m = self.model = cp_model.CpModel()
        horizon = sum(max(o.duration_cycles for o in opts.values()) for opts in p.options)
        horizon += sum(max(p.delay_cycles(e, "a", "b"), 0) for e in p.edges)
        self.horizon = horizon
        self.x: dict[tuple[int, str], cp_model.IntVar] = {}
        self.S = [m.new_int_var(0, horizon, f"S{t}") for t in range(p.n)]
        self.E = [m.new_int_var(0, horizon, f"E{t}") for t in range(p.n)]
        core_intervals: dict[str, list] = {c: [] for c in p.cores}
        bus_intervals: dict[str, list] = {}
        for t, options in enumerate(p.options):
            for c, option in options.items():
                x = self.x[t, c] = m.new_bool_var(f"x{t}_{c}")
                interval = m.new_optional_fixed_size_interval_var(self.S[t], option.duration_cycles, x, "")
                for occupied in option.cores(c):
                    core_intervals[occupied].append(interval)
                if option.bus is not None and option.bus_cycles:
                    bus_intervals.setdefault(option.bus, []).append(
                        m.new_optional_fixed_size_interval_var(self.S[t], option.bus_cycles, x, ""))
            m.add_exactly_one(self.x[t, c] for c in options)
            m.add(self.E[t] == self.S[t] + sum(o.duration_cycles * self.x[t, c] for c, o in options.items()))
        for intervals in list(core_intervals.values()) + list(bus_intervals.values()):
            if len(intervals) > 1:
                m.add_no_overlap(intervals)
        self.same: dict[int, cp_model.IntVar] = {}
        energy_terms = []
        scale = self.scale = energy_scale(p)
        for k, e in enumerate(p.edges):
            delay = p.delay_cycles(e, "a", "b")
            transfer = p.transfer_energy_pj(e, "a", "b")
            if delay == 0 and transfer == 0:
                m.add(self.S[e.target] >= self.E[e.source])
                continue
            shared = [c for c in p.options[e.source] if c in p.options[e.target]]
            together = []
            for c in shared:
                y = m.new_bool_var(f"y{k}_{c}")
                m.add_implication(y, self.x[e.source, c])
                m.add_implication(y, self.x[e.target, c])
                together.append(y)
            same = sum(together)
            m.add(self.S[e.target] >= self.E[e.source] + delay - delay * same)
            if transfer:
                energy_terms.append(round(transfer * scale) * (1 - same))
        # interchangeable cores: core k+1 serves a task only if core k served an earlier (or the same) one
        for group in p.core_classes:
            tasks = [t for t in range(p.n) if group[0] in p.options[t]]
            for a, b in zip(group, group[1:], strict=False):
                for i, t in enumerate(tasks):
                    m.add(self.x[t, b] <= sum(self.x[u, a] for u in tasks[:i]))
        self.makespan = m.new_int_var(0, horizon, "makespan")
        m.add_max_equality(self.makespan, self.E)
        # redundant load bounds (they put the resources into the LP relaxation): every core and every
        # DRAM link is busy for at most the makespan
        load: dict[str, list] = {}
        for (t, c), x in self.x.items():
            option = p.options[t][c]
            for occupied in option.cores(c):
                load.setdefault(f"core:{occupied}", []).append(option.duration_cycles * x)
            if option.bus is not None and option.bus_cycles:
                load.setdefault(f"bus:{option.bus}", []).append(option.bus_cycles * x)
        for terms in load.values():
            m.add(sum(terms) <= self.makespan)
        # redundant: the one-machine bound of every DRAM link with heads and tails (bounds.py)
        m.add(self.makespan >= link_bound_cycles(p))
        energy_terms += [round(o.energy_pj * scale) * self.x[t, c] for t, opts in enumerate(p.options)
                         for c, o in opts.items()]
        self.energy = sum(energy_terms)
        if target.makespan_cap is not None:
            m.add(self.makespan <= target.makespan_cap)
        if target.energy_cap is not None:
            m.add(self.energy <= target.energy_cap)
        m.minimize(self.makespan if target.minimise == "makespan" else self.energy)

    def hint(self, schedule: Schedule) -> None:
        for (t, c), var in self.x.items():
            self.model.add_hint(var, schedule.assignment[t] == c)
        for t, s in enumerate(schedule.start_cycles):
            self.model.add_hint(self.S[t], s)

    def schedule(self, solver: cp_model.CpSolver) -> tuple[tuple[str, ...], tuple[int, ...], int, int]:
        p = self.problem
        assignment = tuple(next(c for c in p.options[t] if solver.value(self.x[t, c])) for t in range(p.n))
        return assignment, tuple(solver.value(s) for s in self.S), solver.value(self.makespan), solver.value(self.energy)


@dataclass(frozen=True)
class CpsatAnswer:
    assignment: tuple[str, ...] | None
    start_cycles: tuple[int, ...] | None
    makespan_cycles: int | None  # as the model states it
    energy_scaled: int | None
    stats: SolveStats


def solve_allocation_cpsat(problem: AllocationProblem, target: Target, options: SolverOptions, deadline: Deadline,
                           hint: Schedule | None = None) -> CpsatAnswer:
    model = _Model(problem, target)
    if hint is not None:
        model.hint(hint)
    scale = 1.0 if target.minimise == "makespan" else 1.0 / model.scale
    solver, stats = run_cpsat(model.model, options, deadline, SUBSOLVERS, scale=scale)
    if stats.objective is None:
        return CpsatAnswer(None, None, None, None, stats)
    assignment, starts, makespan, energy = model.schedule(solver)
    return CpsatAnswer(assignment, starts, makespan, energy, stats)
