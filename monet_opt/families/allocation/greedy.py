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

from monet_opt.families.allocation.problem import AllocationProblem, Schedule, evaluate


def upward_ranks(problem: AllocationProblem) -> list[float]:
    succs: list[list] = [[] for _ in problem.tasks]
    for e in problem.edges:
        succs[e.source].append(e)
    rank = [0.0] * problem.n
    for t in reversed(range(problem.n)):
        mean = sum(o.duration_cycles for o in problem.options[t].values()) / len(problem.options[t])
        rank[t] = mean + max((problem.delay_cycles(e, "a", "b") / 2 + rank[e.target] for e in succs[t]), default=0.0)
    return rank


class _Placement:
    """The partial schedule of a list scheduler: what is placed, when cores and links are free."""

    def __init__(self, problem: AllocationProblem) -> None:
        self.problem = problem
        self.preds = problem.preds()
        self.missing = [len({e.source for e in self.preds[t]}) for t in range(problem.n)]
        self.succs: list[set[int]] = [set() for _ in problem.tasks]
        for e in problem.edges:
            self.succs[e.source].add(e.target)
        self.core_free = {c: 0 for c in problem.cores}
        self.bus_free: dict[str, int] = {}
        self.assignment: list[str | None] = [None] * problem.n
        self.start = [0] * problem.n
        self.end = [0] * problem.n

    def sources(self) -> list[int]:
        return [t for t in range(self.problem.n) if self.missing[t] == 0]

    def earliest_begin(self, t: int, core: str) -> int:
        """When t could start on `core`: core free, inputs arrived (+ delay), its DRAM link free."""
        p, option = self.problem, self.problem.options[t][core]
        begin = max(self.core_free[c] for c in option.cores(core))
        for e in self.preds[t]:
            begin = max(begin, self.end[e.source] + p.delay_cycles(e, self.assignment[e.source], core))
        if option.bus is not None and option.bus_cycles:
            begin = max(begin, self.bus_free.get(option.bus, 0))
        return begin

    def place(self, t: int, core: str, begin: int) -> list[int]:
        """Put t on `core` at `begin`; the tasks this makes ready."""
        option = self.problem.options[t][core]
        self.assignment[t], self.start[t], self.end[t] = core, begin, begin + option.duration_cycles
        for c in option.cores(core):
            self.core_free[c] = self.end[t]
        if option.bus is not None and option.bus_cycles:
            self.bus_free[option.bus] = begin + option.bus_cycles
        ready = []
        for s in sorted(self.succs[t]):
            self.missing[s] -= 1
            if self.missing[s] == 0:
                ready.append(s)
        return ready

    def schedule(self) -> Schedule:
        """The placed schedule as the evaluator measures it (its per-core and per-link orders)."""
        p = self.problem
        placed = Schedule(tuple(self.assignment), tuple(self.start), max(self.end, default=0), 0.0)
        return evaluate(p, placed.assignment, placed.core_orders(p), placed.bus_orders(p))


def heft(problem: AllocationProblem) -> Schedule:
    rank = upward_ranks(problem)
    state = _Placement(problem)
    ready = [(-rank[t], t) for t in state.sources()]
    heapq.heapify(ready)
    while ready:
        _, t = heapq.heappop(ready)
        best = None
        for position, (c, option) in enumerate(problem.options[t].items()):
            begin = state.earliest_begin(t, c)
            key = (begin + option.duration_cycles, option.energy_pj, problem.cores.index(c), position)
            if best is None or key < best[0]:
                best = (key, c, begin)
        _, core, begin = best
        for s in state.place(t, core, begin):
            heapq.heappush(ready, (-rank[s], s))
    return state.schedule()


def earliest_start(problem: AllocationProblem, priority: Sequence[float]) -> Schedule:
    """Earliest-start list schedule (module docstring) with `priority` per task (higher first)."""
    state = _Placement(problem)
    ready = set(state.sources())
    while ready:
        best = None
        for t in ready:
            for c, option in problem.options[t].items():
                begin = state.earliest_begin(t, c)
                key = (begin, -priority[t], begin + option.duration_cycles, option.energy_pj, t, c)
                if best is None or key < best:
                    best = key
        begin, _, _, _, t, core = best
        ready.discard(t)
        ready.update(state.place(t, core, begin))
    return state.schedule()


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
