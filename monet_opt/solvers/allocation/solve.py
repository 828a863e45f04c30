"""One entry point for allocation, with validation of every answer.

A training-graph answer becomes a `Plan` (its cores, per-core orders and, for CP-SAT, per-link DRAM
orders) and is simulated by the validation scheduler; an abstract answer is evaluated by
`problem.evaluate`. The reported latency and energy are the simulated ones. With the orders fixed,
the simulator computes the earliest schedule that respects them, so its makespan is never above the
one CP-SAT states and equals it when CP-SAT proves optimality; energy must match within
ENERGY_RELATIVE_TOLERANCE. Anything else (a violation, a larger simulated makespan, a smaller one
under a proof of optimality) is a bug and raises.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from monet_opt.cost.model import CostTable
from monet_opt.hardware.model import Accelerator
from monet_opt.schedule.plan import Plan
from monet_opt.schedule.simulate import ENERGY_RELATIVE_TOLERANCE, SimulationResult, simulate
from monet_opt.solvers.allocation.cpsat import Target, energy_scale, solve_allocation_cpsat
from monet_opt.solvers.allocation.ga import stream_ga, stream_ga_config
from monet_opt.solvers.allocation.greedy import heft, randomised_list_schedules
from monet_opt.solvers.allocation.problem import AllocationProblem, Schedule, evaluate
from monet_opt.solvers.common import SolverOptions, SolveStats, SolveStatus, heuristic_stats, shift_times
from monet_opt.solvers.genetic import GAConfig
from monet_opt.workload.ir import Graph

METHODS = ("cpsat", "ga", "greedy")
WARM_START_ROUNDS = 20
"""Randomised earliest-start list schedules tried for CP-SAT's warm start (about 10 ms each on
a 220-op training step)."""
OBJECTIVES = ("latency", "energy", "pareto")


@dataclass(frozen=True)
class AllocationInstance:
    """The problem and, for a training graph, what the validation scheduler needs."""

    problem: AllocationProblem
    graph: Graph | None = None
    hw: Accelerator | None = None
    table: CostTable | None = None


@dataclass(frozen=True)
class Validated:
    """An allocation as the referee measured it."""

    assignment: tuple[str, ...]
    core_orders: Mapping[str, tuple[int, ...]]
    latency_cycles: int
    energy_pj: float
    simulation: SimulationResult | None  # training graphs
    schedule: Schedule  # start cycles (simulated for training graphs)


@dataclass(frozen=True)
class AllocationResult:
    method: str
    objective: str
    best: Validated | None
    stats: SolveStats
    front: tuple[Validated, ...] = field(default=())  # pareto: non-dominated (latency, energy) points

    def to_dict(self, instance: AllocationInstance) -> dict[str, Any]:
        p = instance.problem
        b = self.best
        return {
            "problem": p.name,
            "method": self.method,
            "objective": self.objective,
            "status": self.stats.status.value,
            "latency_cycles": None if b is None else b.latency_cycles,
            "energy_pj": None if b is None else b.energy_pj,
            "bound": self.stats.bound,
            "gap": self.stats.gap,
            "solve_time_s": self.stats.solve_time_s,
            "time_to_first_s": self.stats.time_to_first_s,
            "time_to_best_s": self.stats.time_to_best_s,
            "validated": b is not None,
            "assignment": None if b is None else dict(zip(p.tasks, b.assignment, strict=True)),
            "cores_used": None if b is None else sorted(set(b.assignment)),
            "incumbents": [{"time_s": i.time_s, "objective": i.objective} for i in self.stats.incumbents],
            "front": [{"latency_cycles": v.latency_cycles, "energy_pj": v.energy_pj} for v in self.front],
        }


def reference_orders(problem: AllocationProblem, assignment: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Per core, its tasks in the reference (topological) order: the GA's decoder."""
    return {c: tuple(t for t in range(problem.n) if assignment[t] == c) for c in problem.cores}


def plan_for(instance: AllocationInstance, assignment: Sequence[str], core_orders: Mapping[str, Sequence[int]],
             bus_orders: Mapping[str, Sequence[int]] | None) -> Plan:
    tasks = instance.problem.tasks
    return Plan(
        stacks={t: (t,) for t in tasks},
        core_of=dict(zip(tasks, assignment, strict=True)),
        core_order={c: tuple(tasks[t] for t in order) for c, order in core_orders.items()},
        dram_order={b: tuple(tasks[t] for t in order) for b, order in (bus_orders or {}).items()},
    )


def validate(instance: AllocationInstance, assignment: Sequence[str], core_orders: Mapping[str, Sequence[int]],
             bus_orders: Mapping[str, Sequence[int]] | None = None) -> Validated:
    """Measure an allocation with the referee (see the module docstring); a violation is a bug."""
    p = instance.problem
    if instance.graph is None:
        schedule = evaluate(p, assignment, core_orders, bus_orders)
        return Validated(tuple(assignment), {c: tuple(o) for c, o in core_orders.items()}, schedule.makespan_cycles,
                         schedule.energy_pj, None, schedule)
    result = simulate(instance.graph, instance.hw, plan_for(instance, assignment, core_orders, bus_orders), instance.table)
    if result.violations:
        raise RuntimeError(f"bug: an allocation the simulator rejects: {result.violations[0].message}")
    start = {t.name: t.start_cycle for t in result.tasks}
    schedule = Schedule(tuple(assignment), tuple(start[t] for t in p.tasks), result.latency_cycles, result.energy_pj)
    return Validated(tuple(assignment), {c: tuple(o) for c, o in core_orders.items()}, result.latency_cycles,
                     result.energy_pj, result, schedule)


def _check_claim(claimed_makespan: int, claimed_energy: float, measured: Validated, proven: bool) -> None:
    if measured.latency_cycles > claimed_makespan or (proven and measured.latency_cycles != claimed_makespan):
        raise RuntimeError(f"bug: CP-SAT claims makespan {claimed_makespan}, the referee measures "
                           f"{measured.latency_cycles}")
    if not math.isclose(claimed_energy, measured.energy_pj, rel_tol=max(ENERGY_RELATIVE_TOLERANCE, 1e-6)):
        raise RuntimeError(f"bug: CP-SAT claims energy {claimed_energy} pJ, the referee measures {measured.energy_pj}")


def _energy_of(problem: AllocationProblem, assignment: Sequence[str]) -> float:
    energy = sum(problem.options[t][assignment[t]].energy_pj for t in range(problem.n))
    return energy + sum(problem.transfer_energy_pj(e, assignment[e.source], assignment[e.target]) for e in problem.edges)


def _cpsat(instance: AllocationInstance, target: Target, options: SolverOptions, hint: Schedule,
           started: float | None = None) -> tuple[Validated | None, SolveStats]:
    """One CP-SAT solve, validated; `hint` (a validated schedule) is also the fallback answer.
    With `started` (a perf_counter reading), times count from then: the warm start and the model
    building are part of the method's time."""
    p = instance.problem
    answer = solve_allocation_cpsat(p, target, options, hint)
    if started is not None:
        answer = replace(answer, stats=shift_times(answer.stats, time.perf_counter() - started - answer.stats.solve_time_s))
    if answer.assignment is None:
        return None, answer.stats
    placed = Schedule(answer.assignment, answer.start_cycles, answer.makespan_cycles, 0.0)
    measured = validate(instance, answer.assignment, placed.core_orders(p), placed.bus_orders(p))
    proven = answer.stats.status is SolveStatus.OPTIMAL and target.minimise == "makespan"
    _check_claim(answer.makespan_cycles, _energy_of(p, answer.assignment), measured, proven)
    return measured, answer.stats


def _restated(stats: SolveStats, objective: float) -> SolveStats:
    """The stats with the referee's objective (never above the solver's incumbent)."""
    return SolveStats(stats.status, objective, stats.bound, stats.solve_time_s, stats.time_to_first_s,
                      stats.time_to_best_s, stats.incumbents)


def solve_allocation(instance: AllocationInstance, method: str, objective: str, options: SolverOptions,
                     ga_config: GAConfig | None = None, pareto_points: int = 5) -> AllocationResult:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    p = instance.problem
    started = time.perf_counter()
    if method == "greedy":
        g = heft(p)
        best = validate(instance, g.assignment, g.core_orders(p), g.bus_orders(p))
        return AllocationResult(method, objective, best, heuristic_stats(
            best.latency_cycles if objective != "energy" else best.energy_pj, time.perf_counter() - started), (best,))
    if method == "ga":
        config = ga_config or stream_ga_config(seed=options.seed)

        def measure(assignment: tuple[str, ...]) -> tuple[float, int]:
            v = validate(instance, assignment, reference_orders(p, assignment))
            return v.energy_pj, v.latency_cycles

        front = [validate(instance, a, reference_orders(p, a)) for _, _, a in stream_ga(p, measure, config)]
        key = (lambda v: (v.energy_pj, v.latency_cycles)) if objective == "energy" else \
            (lambda v: (v.latency_cycles, v.energy_pj))
        best = min(front, key=key)
        value = best.energy_pj if objective == "energy" else best.latency_cycles
        return AllocationResult(method, objective, best, heuristic_stats(value, time.perf_counter() - started),
                                tuple(sorted(front, key=lambda v: v.latency_cycles)))
    hint, hint_measured = warm_start(instance, options.seed)
    if objective == "latency":
        measured, stats = _cpsat(instance, Target("makespan"), options, hint, started)
        if measured is None or measured.latency_cycles > hint_measured.latency_cycles:
            measured = hint_measured  # the warm start was not improved within the time limit
        return AllocationResult(method, objective, measured, _restated(stats, measured.latency_cycles), (measured,))
    if objective == "energy":
        half = SolverOptions(options.time_limit_s / 2, options.workers, options.seed, options.deterministic)
        least, stats = _cpsat(instance, Target("energy"), half, hint, started)
        if least is None or least.energy_pj > hint_measured.energy_pj:
            least = hint_measured  # the warm start was not improved within the time limit
        faster, _ = _cpsat(instance, Target("makespan", energy_cap=_scaled_energy(p, least.assignment)), half,
                           least.schedule)
        best = faster if faster is not None and faster.latency_cycles <= least.latency_cycles else least
        return AllocationResult(method, objective, best, _restated(stats, best.energy_pj), (best,))
    return _pareto(instance, options, hint, hint_measured, pareto_points)


def warm_start(instance: AllocationInstance, seed: int) -> tuple[Schedule, Validated]:
    """The faster (as the referee measures it) of HEFT and the best randomised earliest-start
    list schedule, in the model's terms and measured: CP-SAT's hint and its fallback, so CP-SAT is
    never worse than greedy."""
    p = instance.problem
    candidates = [heft(p), randomised_list_schedules(p, WARM_START_ROUNDS, seed)]
    measured = [(validate(instance, c.assignment, c.core_orders(p), c.bus_orders(p)), c) for c in candidates]
    best, schedule = min(measured, key=lambda pair: (pair[0].latency_cycles, pair[0].energy_pj))
    return schedule, best


def _scaled_energy(problem: AllocationProblem, assignment: Sequence[str]) -> int:
    scale = energy_scale(problem)
    total = sum(round(problem.options[t][assignment[t]].energy_pj * scale) for t in range(problem.n))
    return total + sum(round(problem.transfer_energy_pj(e, assignment[e.source], assignment[e.target]) * scale)
                       for e in problem.edges)


def _pareto(instance: AllocationInstance, options: SolverOptions, hint: Schedule, greedy: Validated,
            points: int) -> AllocationResult:
    """Exact epsilon-constraint from the low-energy end: least energy under a makespan cap, then the
    fastest plan with that energy; the next cap is one cycle below; stop at the fastest makespan or
    after `points` points. Each of the 2 x (points + 1) solves gets an equal share of the time."""
    p = instance.problem
    started = time.perf_counter()
    share = SolverOptions(options.time_limit_s / (2 * points + 2), options.workers, options.seed, options.deterministic)
    fastest, stats = _cpsat(instance, Target("makespan"), share, hint)
    fastest = fastest if fastest is not None and fastest.latency_cycles <= greedy.latency_cycles else greedy
    tidy, _ = _cpsat(instance, Target("energy", makespan_cap=fastest.latency_cycles), share, fastest.schedule)
    found = [tidy if tidy is not None else fastest]
    cap: int | None = None
    hint = fastest.schedule
    for _ in range(points):
        least, _ = _cpsat(instance, Target("energy", makespan_cap=cap), share, hint)
        if least is None:
            break
        quick, _ = _cpsat(instance, Target("makespan", energy_cap=_scaled_energy(p, least.assignment)), share,
                          least.schedule)
        point = quick if quick is not None and quick.latency_cycles <= least.latency_cycles else least
        found.append(point)
        if point.latency_cycles <= fastest.latency_cycles:
            break
        cap, hint = point.latency_cycles - 1, point.schedule
    front = []
    for v in sorted(found, key=lambda v: (v.latency_cycles, v.energy_pj)):
        if not front or v.energy_pj < front[-1].energy_pj:
            front.append(v)
    stats = SolveStats(stats.status, fastest.latency_cycles, stats.bound, time.perf_counter() - started,
                       stats.time_to_first_s, stats.time_to_best_s, stats.incumbents)
    return AllocationResult("cpsat", "pareto", fastest, stats, tuple(front))
