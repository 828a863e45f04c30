"""Checkpointing heuristics, all expressed as a keep set K and one schedule policy.

Policy (`keep_policy_schedule`): nodes are first computed in the reference order. Before computing
node t, every input that has no live copy is recomputed, recursively, in index order. At the end
of a stage a value stays live if it is in K (until its last descendant has run) or if node t+1
reads it; every other value is dropped and recomputed on demand.

- store-all: K = all nodes (no recomputation);
- recompute-all-but-inputs: K = the source nodes;
- sqrt(n) (Chen et al. 2016): K = the sources and every ceil(sqrt(n))-th node of the order;
- greedy (Chen et al.'s budget sweep): for a threshold b, walk the order adding sizes and make a
  node a checkpoint whenever the running sum exceeds b (then restart the sum); b sweeps a geometric
  grid and the cheapest schedule within the budget wins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from monet_opt.families.remat.problem import RematProblem, evaluate_schedule, memory_excess
from monet_opt.solving.common import Deadline, OutOfTime


def keep_policy_schedule(problem: RematProblem, keep: Iterable[int], deadline: Deadline | None = None) -> list[int]:
    """The reference order where every value outside `keep` is dropped after each stage and
    recomputed (with its dropped ancestors) when a later node needs it. Raises OutOfTime at the
    deadline (a 1000-node graph takes a few hundred ms)."""
    keep = set(keep)
    last = problem.last_descendant
    live: set[int] = set()
    sequence: list[int] = []
    for t in range(problem.n):
        if deadline is not None:
            deadline.check()
        needed: set[int] = set()
        stack = [p for p in problem.preds[t] if p not in live]
        while stack:
            v = stack.pop()
            if v not in needed:
                needed.add(v)
                stack.extend(p for p in problem.preds[v] if p not in live)
        sequence.extend(sorted(needed))
        sequence.append(t)
        available = live | needed | {t}
        following = set(problem.preds[t + 1]) if t + 1 < problem.n else set()
        live = {u for u in available if last[u] >= t + 1 and (u in keep or u in following)}
    return sequence


def sources(problem: RematProblem) -> set[int]:
    return {i for i in range(problem.n) if not problem.preds[i]}


def store_all(problem: RematProblem) -> list[int]:
    return list(range(problem.n))


def recompute_all_but_inputs(problem: RematProblem) -> list[int]:
    return keep_policy_schedule(problem, sources(problem))


def sqrt_n(problem: RematProblem, deadline: Deadline | None = None) -> list[int]:
    step = max(1, math.ceil(math.sqrt(problem.n)))
    return keep_policy_schedule(problem, sources(problem) | {i for i in range(problem.n) if (i + 1) % step == 0},
                                deadline)


def greedy_keep_set(problem: RematProblem, threshold: float) -> set[int]:
    keep, running = sources(problem), 0
    for i in range(problem.n):
        running += problem.size[i]
        if running > threshold:
            keep.add(i)
            running = 0
    return keep


def greedy(problem: RematProblem, budget: int, points: int = 40, deadline: Deadline | None = None) -> list[int] | None:
    """Chen's greedy over a geometric grid of thresholds: the cheapest schedule within `budget`
    (of the thresholds tried before the deadline)."""
    low, high = max(1, min(problem.size)) / 2, max(1, sum(problem.size))  # low: every node kept
    best: tuple[int, list[int]] | None = None
    for k in range(points):
        threshold = low * (high / low) ** (k / max(points - 1, 1))
        try:
            schedule = keep_policy_schedule(problem, greedy_keep_set(problem, threshold), deadline)
        except OutOfTime:
            break
        result = evaluate_schedule(problem, schedule)
        if result.peak <= budget and (best is None or result.cost < best[0]):
            best = (result.cost, schedule)
    return best[1] if best else None


def peak_descent(problem: RematProblem, budget: int, max_steps: int | None = None,
                 deadline: Deadline | None = None) -> list[int] | None:
    """Budget-directed keep-set descent: start from K = every node (store-all); while the
    schedule exceeds the budget, try dropping from K each value whose copy is live at the peak
    step, and keep the drop with the least extra cost per unit of excess memory removed (excess:
    memory above the budget summed over the steps). Returns the first schedule that fits, or None
    when no drop reduces the excess, or at the deadline."""
    keep = set(range(problem.n))
    schedule = keep_policy_schedule(problem, keep)
    result = evaluate_schedule(problem, schedule)
    excess = memory_excess(problem, schedule, result, budget)
    for _ in range(max_steps if max_steps is not None else problem.n):
        if excess == 0:
            return schedule
        if deadline is not None and deadline.expired():
            return None
        at = result.peak_step
        live = {schedule[start] for start, end in result.lifetimes if start <= at <= end} & keep
        best = None
        for u in sorted(live):
            try:
                trial = keep_policy_schedule(problem, keep - {u}, deadline)
            except OutOfTime:
                return None
            replay = evaluate_schedule(problem, trial)
            trial_excess = memory_excess(problem, trial, replay, budget)
            if trial_excess < excess:
                score = (replay.cost - result.cost) / (excess - trial_excess)
                if best is None or score < best[0]:
                    best = (score, u, trial, replay, trial_excess)
        if best is None:
            return None
        _, u, schedule, result, excess = best
        keep.discard(u)
    return schedule if excess == 0 else None


def evict_on_demand(problem: RematProblem, budget: int, deadline: Deadline | None = None) -> list[int] | None:
    """Run the reference order within `budget`, evicting and recomputing on demand (an offline,
    Belady-like variant of Dynamic Tensor Rematerialization, Kirisame et al. 2021).

    A value's next use is the earliest later frontier node that reads it, directly or through an
    evicted successor that will have to be recomputed. Before a value is computed, values are
    evicted until the live ones plus the new one fit the budget; the victim has the smallest
    refill cost (the value and every evicted ancestor it would need) x (1 + its evicted successors
    still needed) / (size x distance to its next use), values with no next use first (they are
    dropped at the end of every stage anyway). Inputs of every execution in progress are never
    evicted; a missing input is recomputed, recursively, when an execution needs it. The replayed
    peak is at most the budget: the replay frees a copy after its last use, never later than this
    eviction does. Returns None when the protected inputs alone do not fit, or at the deadline.
    """
    n, preds, succs, size, cost = problem.n, problem.preds, problem.succs, problem.size, problem.cost
    never = n  # "no next use"
    live: set[int] = set()
    used = 0
    sequence: list[int] = []

    def next_uses(stage: int) -> list[int]:
        need = [never] * n
        for u in reversed(range(n)):
            for j in succs[u]:
                need[u] = min(need[u], j if j > stage else (need[j] if j not in live else never))
        return need

    def evicted(u: int, need: list[int]) -> None:
        """Drop u; its inputs are now needed (to refill u) by u's next use at the latest."""
        nonlocal used
        live.discard(u)
        used -= size[u]
        todo = [u]
        while todo:
            v = todo.pop()
            for p in preds[v]:
                if need[v] < need[p]:
                    need[p] = need[v]
                    if p not in live:
                        todo.append(p)

    def refill_cost(u: int) -> int:
        """Cost of recomputing u now: u and every ancestor reachable through evicted values."""
        closure, todo = {u}, [u]
        while todo:
            for p in preds[todo.pop()]:
                if p not in live and p not in closure:
                    closure.add(p)
                    todo.append(p)
        return sum(cost[v] for v in closure)

    for stage in range(n):
        if deadline is not None and deadline.expired():
            return None
        need = next_uses(stage - 1)  # stage is a later use of its inputs
        stack = [stage]
        while stack:
            node = stack[-1]
            missing = [p for p in preds[node] if p not in live]
            if missing:
                stack.append(missing[-1])
                continue
            if used + size[node] > budget:
                protected = {p for frame in stack for p in preds[frame]}

                def score(u: int) -> tuple[float, int, int]:
                    if need[u] == never:
                        return (-1.0, -size[u], u)
                    # evicting u also lengthens the refill of every evicted successor still needed
                    waiting = sum(1 for j in succs[u] if j <= stage and j not in live and need[j] != never)
                    return (refill_cost(u) * (1 + waiting) / (max(size[u], 1) * (need[u] - stage + 1)), -size[u], u)

                for u in sorted((u for u in live if u not in protected), key=score):
                    evicted(u, need)
                    if used + size[node] <= budget:
                        break
                if used + size[node] > budget:
                    return None
            sequence.append(node)
            stack.pop()
            if node not in live:
                live.add(node)
                used += size[node]
        need = next_uses(stage)
        for u in [u for u in live if need[u] == never]:
            live.discard(u)
            used -= size[u]
    return sequence
