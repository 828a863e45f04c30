"""List scheduling: HEFT (the third point of comparison) and earliest-start list scheduling with
randomised priorities (CP-SAT's warm start).

Upward rank of a task: its mean duration over its eligible cores plus the largest (delay + rank)
of its successors. HEFT repeatedly takes the ready task of highest rank (ties: reference order)
and puts it on the core where it finishes earliest (ties: less energy, then core order), starting
when the core is free, its inputs have arrived and its DRAM link is free; no insertion into idle
gaps. Earliest-start scheduling instead picks, among every ready task on every eligible core, the
pair that can start first (ties: higher priority, then earlier finish): on accelerators whose
shared DRAM link is the bottleneck it keeps the link busy, which rank order does not.
"""

from __future__ import annotations

import heapq
import random

from collections.abc import Sequence

from monet_opt.solvers.allocation.problem import AllocationProblem, Schedule, evaluate


def upward_ranks(problem: AllocationProblem) -> list[float]:
    succs: list[list] = [[] for _ in problem.tasks]
    for e in problem.edges:
        succs[e.source].append(e)
    rank = [0.0] * problem.n
    for t in reversed(range(problem.n)):
        mean = sum(o.duration_cycles for o in problem.options[t].values()) / len(problem.options[t])
        rank[t] = mean + max((problem.delay_cycles(e, "a", "b") / 2 + rank[e.target] for e in succs[t]), default=0.0)
    return rank


def heft(problem: AllocationProblem) -> Schedule:
    rank = upward_ranks(problem)
    preds = problem.preds()
    missing = [len({e.source for e in preds[t]}) for t in range(problem.n)]
    succs: list[set[int]] = [set() for _ in problem.tasks]
    for e in problem.edges:
        succs[e.source].add(e.target)
    ready = [(-rank[t], t) for t in range(problem.n) if missing[t] == 0]
    heapq.heapify(ready)
    core_free = {c: 0 for c in problem.cores}
    bus_free: dict[str, int] = {}
    assignment: list[str | None] = [None] * problem.n
    start = [0] * problem.n
    end = [0] * problem.n
    while ready:
        _, t = heapq.heappop(ready)
        best = None
        for position, (c, option) in enumerate(problem.options[t].items()):
            begin = core_free[c]
            for e in preds[t]:
                begin = max(begin, end[e.source] + problem.delay_cycles(e, assignment[e.source], c))
            if option.bus is not None and option.bus_cycles:
                begin = max(begin, bus_free.get(option.bus, 0))
            key = (begin + option.duration_cycles, option.energy_pj, problem.cores.index(c), position)
            if best is None or key < best[0]:
                best = (key, c, begin)
        _, core, begin = best
        option = problem.options[t][core]
        assignment[t], start[t], end[t] = core, begin, begin + option.duration_cycles
        core_free[core] = end[t]
        if option.bus is not None and option.bus_cycles:
            bus_free[option.bus] = begin + option.bus_cycles
        for s in succs[t]:
            missing[s] -= 1
            if missing[s] == 0:
                heapq.heappush(ready, (-rank[s], s))
    placed = Schedule(tuple(assignment), tuple(start), max(end, default=0), 0.0)
    return evaluate(problem, placed.assignment, placed.core_orders(problem), placed.bus_orders(problem))


def earliest_start(problem: AllocationProblem, priority: Sequence[float]) -> Schedule:
    """Earliest-start list schedule (module docstring) with `priority` per task (higher first)."""
    preds = problem.preds()
    missing = [len({e.source for e in preds[t]}) for t in range(problem.n)]
    succs: list[set[int]] = [set() for _ in problem.tasks]
    for e in problem.edges:
        succs[e.source].add(e.target)
    ready = {t for t in range(problem.n) if missing[t] == 0}
    core_free = {c: 0 for c in problem.cores}
    bus_free: dict[str, int] = {}
    assignment: list[str | None] = [None] * problem.n
    start = [0] * problem.n
    end = [0] * problem.n
    while ready:
        best = None
        for t in ready:
            arrived = {c: max((end[e.source] + problem.delay_cycles(e, assignment[e.source], c) for e in preds[t]),
                              default=0) for c in problem.options[t]}
            for c, option in problem.options[t].items():
                begin = max(core_free[c], arrived[c])
                if option.bus is not None and option.bus_cycles:
                    begin = max(begin, bus_free.get(option.bus, 0))
                key = (begin, -priority[t], begin + option.duration_cycles, option.energy_pj, t, c)
                if best is None or key < best:
                    best = key
        begin, _, finish, _, t, core = best
        option = problem.options[t][core]
        assignment[t], start[t], end[t] = core, begin, finish
        core_free[core] = finish
        if option.bus is not None and option.bus_cycles:
            bus_free[option.bus] = begin + option.bus_cycles
        ready.discard(t)
        for s in succs[t]:
            missing[s] -= 1
            if missing[s] == 0:
                ready.add(s)
    placed = Schedule(tuple(assignment), tuple(start), max(end, default=0), 0.0)
    return evaluate(problem, placed.assignment, placed.core_orders(problem), placed.bus_orders(problem))


def randomised_list_schedules(problem: AllocationProblem, rounds: int, seed: int) -> Schedule:
    """The shortest of HEFT, earliest-start by upward rank, and `rounds` earliest-start schedules
    whose ranks are multiplied by random factors in [0.5, 1.5] (seeded; ties: the earlier found)."""
    rank = upward_ranks(problem)
    rng = random.Random(seed)
    best = min((heft(problem), earliest_start(problem, rank)), key=lambda s: s.makespan_cycles)
    for _ in range(rounds):
        candidate = earliest_start(problem, [r * rng.uniform(0.5, 1.5) for r in rank])
        if candidate.makespan_cycles < best.makespan_cycles:
            best = candidate
    return best
