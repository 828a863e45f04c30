"""Greedy list scheduling (HEFT-like), the third point of comparison and the CP-SAT warm start.

Upward rank of a task: its mean duration over its eligible cores plus the largest (delay + rank)
of its successors. Repeatedly take the ready task of highest rank (ties: reference order) and put
it on the core where it finishes earliest (ties: less energy, then core order), starting when the
core is free, its inputs have arrived and its DRAM link is free; no insertion into idle gaps.
"""

from __future__ import annotations

import heapq

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
