"""The allocation family: which core runs each task and in which order (`AllocationInstance`), an
allocation (with its latency-energy front) as payload, and a referee: the validation scheduler
for training graphs (`schedule.check` on the plan of cores, per-core orders and, for CP-SAT,
per-link DRAM orders), `problem.evaluate` for abstract instances.

With the orders fixed, the referee computes the earliest schedule that respects them, so the
measured makespan is never above the one CP-SAT states and equals it when CP-SAT proves a minimum
makespan (the claim is an upper bound otherwise); energy must match within 1e-6 (the model's
energies are scaled integers). Targets (`AllocationGoal`): latency (makespan), energy (least
energy, then the fastest plan with it), pareto (the latency-energy front; the headline plan is
the front's fastest point). Methods: cpsat (exact, warm-started from the faster of HEFT and
randomised earliest-start list schedules, never worse than them), ga (Stream's NSGA-II), greedy
(HEFT).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from monet_opt.errors import InputError
from monet_opt.families.allocation.cpsat import Target, energy_scale, solve_allocation_cpsat
from monet_opt.families.allocation.ga import stream_ga, stream_ga_config
from monet_opt.families.allocation.greedy import heft, randomised_list_schedules
from monet_opt.families.allocation.problem import AllocationProblem, FusedStack, Schedule, evaluate, load_instance
from monet_opt.io import file_beside
from monet_opt.model.cost.model import CostTable
from monet_opt.model.hardware.model import Accelerator
from monet_opt.model.workload.ir import Graph
from monet_opt.report.answer import allocation_lines
from monet_opt.schedule.plan import Plan
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import SimulationResult, check, disagreements, simulate
from monet_opt.solving.common import (
    Deadline, GAConfig, SolverOptions, SolveStats, SolveStatus, heuristic_stats, warm_start_stats,
)
from monet_opt.solving.contract import (
    Claim, Family, InstanceFormat, Measurement, Method, MethodKind, Proposal, Result, Verdict, registry, solve,
)

WARM_START_ROUNDS = 20
"""Randomised earliest-start list schedules tried for CP-SAT's warm start (about 10 ms each on
a 220-op training step)."""
ENERGY_TOLERANCE = 1e-6
"""Relative energy agreement between the model (integer energies, `energy_scale`) and the referee."""


class AllocationGoal(StrEnum):
    LATENCY = "latency"
    ENERGY = "energy"
    PARETO = "pareto"


OBJECTIVES = tuple(g.value for g in AllocationGoal)


@dataclass(frozen=True)
class AllocationInstance:
    """The problem and, for a training graph, what the validation scheduler needs."""

    problem: AllocationProblem
    graph: Graph | None = None
    hw: Accelerator | None = None
    table: CostTable | None = None
    stacks: Mapping[str, FusedStack] | None = None  # tasks that are fused stacks (`problem.from_fused`)


@dataclass(frozen=True)
class Validated:
    """An allocation as the referee measured it, and what its producer claimed of it."""

    assignment: tuple[str, ...]
    core_orders: Mapping[str, tuple[int, ...]]
    bus_orders: Mapping[str, tuple[int, ...]] | None  # None: each link in the reference order
    latency_cycles: int
    energy_pj: float
    simulation: SimulationResult | None  # training graphs
    schedule: Schedule  # start cycles (simulated for training graphs)
    claim: PlanClaim  # the producer's claim (a heuristic claims what it measured)


@dataclass(frozen=True)
class AllocationAnswer:
    best: Validated
    front: tuple[Validated, ...]  # non-dominated (latency, energy) points, fastest first


def reference_orders(problem: AllocationProblem, assignment: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Per core, its tasks in the reference (topological) order: the GA's decoder."""
    return {c: tuple(t for t in range(problem.n) if c in problem.occupied(t, assignment[t])) for c in problem.cores}


def plan_for(instance: AllocationInstance, assignment: Sequence[str], core_orders: Mapping[str, Sequence[int]],
             bus_orders: Mapping[str, Sequence[int]] | None) -> Plan:
    tasks = instance.problem.tasks
    stacks = {t: (t,) for t in tasks}
    placement = {}
    for name, core in zip(tasks, assignment, strict=True):
        if instance.stacks is not None:
            stack = instance.stacks[name]
            stacks[name] = stack.ops
            placement.update({op: c for op, c in zip(stack.ops, stack.on(core), strict=True) if c != core})
    return Plan(
        stacks=stacks,
        core_of=dict(zip(tasks, assignment, strict=True)),
        core_order={c: tuple(tasks[t] for t in order) for c, order in core_orders.items()},
        dram_order={b: tuple(tasks[t] for t in order) for b, order in (bus_orders or {}).items()},
        placement=placement,
    )



def validate(instance: AllocationInstance, assignment: Sequence[str], core_orders: Mapping[str, Sequence[int]],
             bus_orders: Mapping[str, Sequence[int]] | None = None, claim: PlanClaim | None = None) -> Validated:
    """Measure an allocation with the referee's simulator (methods use it to compare candidates).
    Without `claim`, the allocation claims what was measured. A plan the simulator finds violations
    in is measured all the same: judging it is the referee's, in `solve()` (one check path)."""
    p = instance.problem
    if instance.graph is None:
        schedule = evaluate(p, assignment, core_orders, bus_orders)
        simulation = None
    else:
        simulation = simulate(instance.graph, instance.hw, plan_for(instance, assignment, core_orders, bus_orders),
                              instance.table)
        start = {t.name: t.start_cycle for t in simulation.tasks}
        schedule = Schedule(tuple(assignment), tuple(start[t] for t in p.tasks), simulation.latency_cycles,
                            simulation.energy_pj)
    return Validated(tuple(assignment), {c: tuple(o) for c, o in core_orders.items()},
                     None if bus_orders is None else {b: tuple(o) for b, o in bus_orders.items()},
                     schedule.makespan_cycles, schedule.energy_pj, simulation, schedule,
                     claim or PlanClaim(schedule.makespan_cycles, schedule.energy_pj))


def _energy_of(problem: AllocationProblem, assignment: Sequence[str]) -> float:
    energy = sum(problem.options[t][assignment[t]].energy_pj for t in range(problem.n))
    return energy + sum(problem.transfer_energy_pj(e, assignment[e.source], assignment[e.target]) for e in problem.edges)


def _scaled_energy(problem: AllocationProblem, assignment: Sequence[str]) -> int:
    scale = energy_scale(problem)
    total = sum(round(problem.options[t][assignment[t]].energy_pj * scale) for t in range(problem.n))
    return total + sum(round(problem.transfer_energy_pj(e, assignment[e.source], assignment[e.target]) * scale)
                       for e in problem.edges)


def _cpsat_solve(instance: AllocationInstance, target: Target, options: SolverOptions, deadline: Deadline,
                 hint: Schedule) -> tuple[Validated | None, SolveStats]:
    """One CP-SAT solve; its answer measured, with the model's claim (makespan: exact when proven
    minimal, else an upper bound; energy)."""
    p = instance.problem
    answer = solve_allocation_cpsat(p, target, options, deadline, hint)
    if answer.assignment is None:
        return None, answer.stats
    placed = Schedule(answer.assignment, answer.start_cycles, answer.makespan_cycles, 0.0)
    proven = answer.stats.status is SolveStatus.OPTIMAL and target.minimise == "makespan"
    claim = PlanClaim(answer.makespan_cycles, _energy_of(p, answer.assignment), latency_is_upper_bound=not proven,
                      energy_relative_tolerance=ENERGY_TOLERANCE)
    return validate(instance, answer.assignment, placed.core_orders(p), placed.bus_orders(p), claim), answer.stats


def warm_start(instance: AllocationInstance, seed: int) -> Validated:
    """The faster (as the referee measures it) of HEFT and the best randomised earliest-start list
    schedule: CP-SAT's hint and its fallback, so CP-SAT is never worse than greedy."""
    p = instance.problem
    candidates = [heft(p), randomised_list_schedules(p, WARM_START_ROUNDS, seed)]
    measured = [validate(instance, c.assignment, c.core_orders(p), c.bus_orders(p)) for c in candidates]
    return min(measured, key=lambda v: (v.latency_cycles, v.energy_pj))


def _front(points: Sequence[Validated]) -> tuple[Validated, ...]:
    """The non-dominated points, fastest first (ties: least energy first)."""
    front: list[Validated] = []
    for v in sorted(points, key=lambda v: (v.latency_cycles, v.energy_pj)):
        if not front or v.energy_pj < front[-1].energy_pj:
            front.append(v)
    return tuple(front)


def _objective(goal: AllocationGoal, v: Validated) -> float:
    return v.energy_pj if goal is AllocationGoal.ENERGY else v.latency_cycles


def _answer(best: Validated, front: Sequence[Validated], stats: SolveStats) -> Proposal[AllocationAnswer]:
    return Proposal(AllocationAnswer(best, tuple(front)), Claim(plan=best.claim), stats)


def _greedy(instance: AllocationInstance, goal: AllocationGoal, options: SolverOptions, deadline: Deadline
            ) -> Proposal[AllocationAnswer]:
    p = instance.problem
    g = heft(p)
    best = validate(instance, g.assignment, g.core_orders(p), g.bus_orders(p))
    return _answer(best, (best,), heuristic_stats(_objective(goal, best), deadline))


def _ga(instance: AllocationInstance, goal: AllocationGoal, options: SolverOptions, deadline: Deadline
        ) -> Proposal[AllocationAnswer]:
    """Stream's NSGA-II (`options.ga`, default Stream's settings seeded with the solve's seed)."""
    p = instance.problem
    measured: dict[tuple[str, ...], Validated] = {}

    def measure(assignment: tuple[str, ...]) -> tuple[float, int]:
        v = measured[assignment] = validate(instance, assignment, reference_orders(p, assignment))
        return v.energy_pj, v.latency_cycles

    evaluated = stream_ga(p, measure, options.ga or stream_ga_config(seed=options.seed), deadline)
    front = _front([measured[a] for _, _, a in evaluated])
    best = min(front, key=lambda v: (v.energy_pj, v.latency_cycles)) if goal is AllocationGoal.ENERGY else front[0]
    return _answer(best, front, heuristic_stats(_objective(goal, best), deadline))


def _pareto(instance: AllocationInstance, options: SolverOptions, deadline: Deadline, hint: Validated,
            points: int) -> tuple[tuple[Validated, ...], SolveStats]:
    """Exact epsilon-constraint from the low-energy end: least energy under a makespan cap, then the
    fastest plan with that energy; the next cap is one cycle below; stop at the fastest makespan or
    after `points` points. Each solve gets an equal share of the time left for the solves to come."""
    p = instance.problem
    solves_left = 2 * points + 2

    def next_solve(target: Target, start: Schedule) -> tuple[Validated | None, SolveStats]:
        nonlocal solves_left
        found = _cpsat_solve(instance, target, options, deadline.share(1 / solves_left), start)
        solves_left -= 1
        return found

    fastest, stats = next_solve(Target("makespan"), hint.schedule)
    fastest = fastest if fastest is not None and fastest.latency_cycles <= hint.latency_cycles else hint
    tidy, _ = next_solve(Target("energy", makespan_cap=fastest.latency_cycles), fastest.schedule)
    found = [fastest] + ([tidy] if tidy is not None else [])
    cap: int | None = None
    start = fastest.schedule
    for _ in range(points):
        least, _ = next_solve(Target("energy", makespan_cap=cap), start)
        if least is None:
            break
        quick, _ = next_solve(Target("makespan", energy_cap=_scaled_energy(p, least.assignment)), least.schedule)
        point = quick if quick is not None and quick.latency_cycles <= least.latency_cycles else least
        found.append(point)
        if point.latency_cycles <= fastest.latency_cycles:
            break
        cap, start = point.latency_cycles - 1, point.schedule
    return _front(found), stats


def _cpsat(pareto_points: int):
    def run(instance: AllocationInstance, goal: AllocationGoal, options: SolverOptions, deadline: Deadline
            ) -> Proposal[AllocationAnswer]:
        hint = warm_start(instance, options.seed)
        if goal is AllocationGoal.LATENCY:
            measured, stats = _cpsat_solve(instance, Target("makespan"), options, deadline, hint.schedule)
            if measured is None or measured.latency_cycles > hint.latency_cycles:
                measured = hint  # the warm start was not improved within the time limit
                stats = warm_start_stats(stats, hint.latency_cycles)
            return _answer(measured, (measured,), stats)
        if goal is AllocationGoal.ENERGY:
            least, stats = _cpsat_solve(instance, Target("energy"), options, deadline.share(0.5), hint.schedule)
            if least is None or least.energy_pj > hint.energy_pj:
                least = hint  # the warm start was not improved within the time limit
                stats = warm_start_stats(stats, hint.energy_pj)
            faster, _ = _cpsat_solve(instance, Target("makespan", energy_cap=_scaled_energy(instance.problem,
                                                                                             least.assignment)),
                                     options, deadline, least.schedule)
            best = faster if faster is not None and faster.latency_cycles <= least.latency_cycles else least
            return _answer(best, (best,), stats)
        front, stats = _pareto(instance, options, deadline, hint, pareto_points)
        return _answer(front[0], front, stats)
    return run


def _measure(instance: AllocationInstance, v: Validated, claim: PlanClaim
             ) -> tuple[list[str], list[str], int, float, SimulationResult | None]:
    """The referee's (violations, disagreements with `claim`, latency, energy, simulation) of one
    allocation."""
    p = instance.problem
    if instance.graph is None:
        try:
            schedule = evaluate(p, v.assignment, v.core_orders, v.bus_orders)
        except InputError as exc:
            return [str(exc)], [], 0, 0.0, None
        found = disagreements(claim, schedule.makespan_cycles, schedule.energy_pj)
        return [], found, schedule.makespan_cycles, schedule.energy_pj, None
    report = check(instance.graph, instance.hw, plan_for(instance, v.assignment, v.core_orders, v.bus_orders),
                   claim, instance.table)
    result = report.result
    return ([f"{x.kind}: {x.message}" for x in result.violations], list(report.disagreements),
            result.latency_cycles, result.energy_pj, result)


def _referee(instance: AllocationInstance, goal: AllocationGoal, answer: AllocationAnswer, claim: Claim | None
             ) -> Verdict:
    headline = claim.plan if claim is not None and claim.plan is not None else answer.best.claim
    violations, disagreeing, latency, energy, simulation = _measure(instance, answer.best, headline)
    for point in answer.front:
        if point is not answer.best:
            point_violations, point_disagreeing, *_ = _measure(instance, point, point.claim)
            violations += point_violations
            disagreeing += point_disagreeing
    objective = energy if goal is AllocationGoal.ENERGY else latency
    return Verdict(Measurement(objective, None, tuple(violations), latency, energy, simulation), tuple(disagreeing))


def _describe(instance: AllocationInstance, goal: AllocationGoal, answer: AllocationAnswer | None,
              measured: Measurement | None) -> dict[str, Any]:
    p = instance.problem
    best = None if answer is None else answer.best
    return {
        "objective_kind": goal.value,
        "assignment": None if best is None else dict(zip(p.tasks, best.assignment, strict=True)),
        "cores_used": None if best is None else sorted(set(best.assignment)),
        "front": [] if answer is None else [{"latency_cycles": v.latency_cycles, "energy_pj": v.energy_pj}
                                            for v in answer.front],
    }


def _space(instance: AllocationInstance, proposal: Proposal[AllocationAnswer]) -> str:
    if instance.stacks is not None:
        fused = sum(1 for stack in instance.stacks.values() if len(stack.ops) > 1)
        tasks = f"the fixed fusion partition's {len(instance.stacks)} stacks ({fused} fused) to eligible cores"
    elif instance.graph is not None:
        tasks = "unfused ops to eligible cores"
    else:
        tasks = "tasks to eligible cores"
    return f"allocations of {tasks} with per-core orders and DRAM-link orders; every value in DRAM"


def _load_instance(document: Mapping[str, Any], directory: Path, source: str
                   ) -> tuple[AllocationInstance, AllocationGoal]:
    """An instance file of the family: `problem: FILE` (an abstract allocation problem, relative to
    the instance) and `objective: latency | energy` (default latency)."""
    objective = document.get("objective", "latency")
    if objective not in ("latency", "energy"):
        raise InputError(f"{source}: objective: expected latency or energy, got {objective!r}")
    problem = load_instance(file_beside(directory, document["problem"], source, "problem"))
    return AllocationInstance(problem), AllocationGoal(objective)


INSTANCE_FORMAT = InstanceFormat(frozenset({"problem", "objective"}), frozenset({"problem"}), _load_instance)


def allocation_family(pareto_points: int = 5) -> Family:
    """The family with its methods; `pareto_points`: the most points of an exact front."""
    return Family(
        "allocation",
        registry(
            Method("cpsat", _cpsat(pareto_points), MethodKind.EXACT, "exact CP-SAT flexible job shop (warm-started)"),
            Method("ga", _ga, MethodKind.SEARCH, "Stream's NSGA-II over core genes"),
            Method("greedy", _greedy, MethodKind.SEARCH, "HEFT list scheduling")),
        _referee, _space, _describe, problem_name=lambda instance: instance.problem.name,
        objective_unit=lambda instance, goal: "pJ" if goal is AllocationGoal.ENERGY else "cycles",
        answer_lines=allocation_lines, instance_format=INSTANCE_FORMAT)


ALLOCATION = allocation_family()
METHODS = tuple(ALLOCATION.methods)


def solve_allocation(instance: AllocationInstance, method: str, objective: str, options: SolverOptions,
                     ga_config: GAConfig | None = None, pareto_points: int = 5,
                     deadline: Deadline | None = None) -> Result[AllocationAnswer]:
    """`solve()` of the allocation family for the goal named `objective`, by `deadline` (default:
    DEFAULT_TIME_LIMIT_S from now)."""
    if objective not in OBJECTIVES:
        raise InputError(f"allocation: unknown objective {objective!r} (one of {', '.join(OBJECTIVES)})")
    family = ALLOCATION if pareto_points == 5 else allocation_family(pareto_points)
    return solve(family, instance, AllocationGoal(objective), method, replace(options, ga=ga_config or options.ga),
                 deadline)
