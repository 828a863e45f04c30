"""Independent reference solvers for the rematerialisation tests (no code shared with monet_opt's
solvers): an exhaustive search over stage schedules, and a Revolve-style DP for uniform chains."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache


def brute_force(preds, cost, size, budget):
    """Minimum total cost of a frontier-advancing stage schedule within `budget` (math.inf if none).

    Exhaustive over the values carried between stages: for each stage t and carried-in set C, every
    carried-out set C' is tried, the stage computes node t plus the fewest recomputations that
    produce C' and t's inputs, and its memory is checked position by position.
    """
    n = len(preds)
    succ = [[j for j in range(n) if i in preds[j]] for i in range(n)]
    last = [-1] * n
    for i in reversed(range(n)):
        for j in succ[i]:
            last[i] = max(last[i], j, last[j])

    def stage(t, carried_in, carried_out):
        computed = set()
        todo = [t] + [v for v in carried_out if v not in carried_in and v != t]
        while todo:
            v = todo.pop()
            if v in computed:
                continue
            computed.add(v)
            todo.extend(p for p in preds[v] if p not in carried_in)
        if any(v > t for v in computed):
            return None
        live = {}
        for i in carried_in:
            live[i] = 0
        for i in computed:
            live[i] = i
        ends = {}
        for i, start in live.items():
            readers = [j for j in computed if i in preds[j]]
            end = max(readers + ([t] if i in carried_out else []) + [start])
            ends[i] = end
        peak = max(sum(size[i] for i in live if live[i] <= k <= ends[i]) for k in range(t + 1))
        if peak > budget:
            return None
        return sum(cost[i] for i in computed if i != t)

    @lru_cache(maxsize=None)
    def best(t, carried_in):
        if t == n:
            return 0
        candidates = [i for i in range(t + 1) if last[i] >= t + 1]
        result = math.inf
        for r in range(len(candidates) + 1):
            for chosen in itertools.combinations(candidates, r):
                extra = stage(t, carried_in, frozenset(chosen))
                if extra is not None:
                    result = min(result, extra + best(t + 1, frozenset(chosen)))
        return result

    return best(0, frozenset()) + sum(cost)


def chain_optimum(n, budget):
    """Minimum total cost (unit costs and sizes) of the adjoint chain f1..fn, bn..b1 within `budget`.

    best(steps, cap, g): forward executions to reverse `steps` steps from a held base checkpoint, with `cap`
    memory units besides the values held by outer levels, and g = 1 when a gradient is held.
    Either sweep to the end without storing (l forward steps, then b, then reverse l - 1), or store
    the checkpoint reached after m steps, reverse the right part with one unit less, compute the
    b at the checkpoint, and reverse the left m - 1 steps.
    """

    @lru_cache(maxsize=None)
    def best(steps, cap, g):
        if steps == 0:
            return 0
        options = []
        if g + min(steps, 2) <= cap and g + 2 <= cap:
            options.append(steps + best(steps - 1, cap, 1))
        for m in range(1, steps):
            if g + min(m, 2) <= cap and 3 <= cap:
                options.append(m + best(steps - m, cap - 1, g) + best(m - 1, cap, 1))
        return min(options, default=math.inf)

    return best(n, budget, 0) + n  # forward executions + one execution of each backward node


def brute_force_any_order(preds, cost, size, budget):
    """Minimum total cost of any schedule within `budget` (math.inf if none): first executions in
    any topological order, recomputations anywhere, freed copies at any time.

    Dijkstra over states (computed set, live set) as bit masks: from a state, either drop one live
    value (free), or run a node that is not live and whose inputs are all live, paying its cost,
    when the live values plus its output fit the budget. A schedule ends once every node has run.
    """
    import heapq

    n = len(preds)
    full = (1 << n) - 1
    needs = [sum(1 << p for p in ps) for ps in preds]
    dist = {(0, 0): 0}
    heap = [(0, 0, 0)]
    while heap:
        d, computed, live = heapq.heappop(heap)
        if dist[(computed, live)] < d:
            continue
        if computed == full:
            return d + 0
        held = sum(size[i] for i in range(n) if live >> i & 1)
        moves = [((computed, live & ~(1 << i)), d) for i in range(n) if live >> i & 1]
        moves += [((computed | 1 << v, live | 1 << v), d + cost[v]) for v in range(n)
                  if not live >> v & 1 and needs[v] & ~live == 0 and held + size[v] <= budget]
        for state, value in moves:
            if value < dist.get(state, math.inf):
                dist[state] = value
                heapq.heappush(heap, (value, *state))
    return math.inf
