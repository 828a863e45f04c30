"""Lower bounds on the makespan that hold for every allocation (formulations/allocation.md, section 2).

Each DRAM link is a single machine: every task that holds it occupies it for `bus_cycles` from its
start. A task cannot start before its head (the longest chain of fastest predecessors) and, once
its link time is over, the step still needs its tail: the rest of its own duration and the longest
chain of fastest successors. Preemptive one-machine scheduling with heads and tails (Jackson's
preemptive schedule, optimal for 1 | r_j, q_j, pmtn | max(C_j + q_j)) bounds the makespan from
below: relaxing preemption and the other resources only lowers the optimum.
"""

from __future__ import annotations

import heapq

from monet_opt.families.allocation.problem import AllocationProblem


def heads_and_tails(problem: AllocationProblem) -> tuple[list[int], list[int]]:
    """Per task: the earliest start over every allocation (head, cycles) and the least time from
    its end to the makespan (cycles), both from the fastest option of every task and no delays."""
    fastest = [min(o.duration_cycles for o in opts.values()) for opts in problem.options]
    preds, succs = problem.preds(), [[] for _ in problem.tasks]
    for e in problem.edges:
        succs[e.source].append(e.target)
    head = [0] * problem.n
    for t in range(problem.n):  # tasks are in a topological order
        head[t] = max((head[e.source] + fastest[e.source] for e in preds[t]), default=0)
    after_end = [0] * problem.n
    for t in reversed(range(problem.n)):
        after_end[t] = max((fastest[s] + after_end[s] for s in succs[t]), default=0)
    return head, after_end


def link_bound_cycles(problem: AllocationProblem) -> int:
    """max over DRAM links of Jackson's preemptive schedule value (see the module docstring); 0
    without links. A task that some core runs without the link is left out of that link's load."""
    head, after_end = heads_and_tails(problem)
    jobs: dict[str, list[tuple[int, int, int]]] = {}  # link -> (release, length, tail)
    for t, options in enumerate(problem.options):
        links = {o.bus for o in options.values()}
        if len(links) != 1 or None in links:
            continue
        length = min(o.bus_cycles for o in options.values())
        if length:
            tail = min(o.duration_cycles - o.bus_cycles for o in options.values()) + after_end[t]
            jobs.setdefault(links.pop(), []).append((head[t], length, tail))
    return max((_jackson_preemptive(j) for j in jobs.values()), default=0)


def _jackson_preemptive(jobs: list[tuple[int, int, int]]) -> int:
    """Optimal max(C_j + q_j) of preemptive one-machine scheduling: at every moment run the
    released job with the largest tail."""
    jobs = sorted(jobs)
    waiting: list[tuple[int, int]] = []  # (-tail, remaining length)
    now = best = k = 0
    while k < len(jobs) or waiting:
        if not waiting and now < jobs[k][0]:
            now = jobs[k][0]
        while k < len(jobs) and jobs[k][0] <= now:
            heapq.heappush(waiting, (-jobs[k][2], jobs[k][1]))
            k += 1
        negative_tail, remaining = heapq.heappop(waiting)
        horizon = jobs[k][0] if k < len(jobs) else now + remaining
        run = min(remaining, horizon - now)
        now += run
        if run < remaining:
            heapq.heappush(waiting, (negative_tail, remaining - run))
        else:
            best = max(best, now - negative_tail)
    return best
