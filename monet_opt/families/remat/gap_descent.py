"""Use-gap descent: a budget-directed heuristic that finds fixed-order schedules within tight
budgets in seconds on graphs of a thousand nodes (formulations/checkpointing.md, section 2).

A value is needed in memory at its *events*: the stage that computes it, the stages of its
readers, and every stage in which a recomputation reads it. Between two consecutive events a and b
lies a *gap*, over which the value is either held (its copy stays live) or dropped: its copy is
freed after stage a and the value is recomputed in a stage m of the gap (a < m <= b, then held to
b), where the recomputation's inputs gain an event. The state bounds memory per stage:
level[s] = the sizes of the values present at some step of stage s (held over it, or computed or
recomputed in it), so the schedule of a state (each stage's recomputations in index order, then its
node) never peaks above max_s level[s].

From store-all (every gap held), each step drops the one gap that lowers the penalty
sum_s max(0, level[s] - budget)^2 most per unit of recomputation cost, among the gaps held over the
`stages_per_step` stages of highest level; the recompute stage m is the gap's end, the stage after
the level being lowered, or the last stage at which every input is still present. An input that is
not present at m is held longer (from its last event to m) or, up to `recompute_depth` levels deep,
recomputed at m too; an input inside one of its dropped gaps is always recomputed. The squared
penalty matters: lowering one stage above the budget by raising another (an input held longer)
counts as progress when it evens them out, where the plain excess would see no change and stop.
The descent stops when every level is within the budget, when no drop lowers the penalty, or at
the deadline; whichever, it returns the schedule of its last state (the caller replays it; it fits
only in the first case, and is then a cheap warm start, else a start for the feasibility phase).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from monet_opt.families.remat.problem import RematProblem
from monet_opt.families.remat.stages import stages_to_sequence
from monet_opt.solving.common import Deadline


@dataclass(frozen=True)
class GapDescentConfig:
    stages_per_step: int = 3  # the highest stages whose held gaps are candidates at each step
    recompute_depth: int = 1  # how many levels of missing inputs a recomputation may recompute too
    penalty_power: float = 2.0


PORTFOLIO = (GapDescentConfig(), GapDescentConfig(stages_per_step=1), GapDescentConfig(penalty_power=3.0),
             GapDescentConfig(recompute_depth=0))
"""The configurations the warm start tries in turn. No single one is best everywhere: at 80 % of
the store-all peak the first fits the project's 500- and 1000-node layered DAGs and the public
ones of 250-1000 nodes; the second stalls on the 1000-node layered DAG but is cheaper on most of
the others (public 250 nodes: 131,965 against 133,430)."""


@dataclass(frozen=True)
class _Drop:
    """A candidate step: drop gap `gap` of `value`, recompute it at stage `at`."""

    value: int
    gap: int
    at: int
    ranges: tuple[tuple[int, int, int], ...]  # (first stage, last stage, size added to each level)
    extra_cost: int
    events: tuple[tuple[int, int, bool], ...]  # (value, stage, recomputed there after a gap of its own)


class _State:
    """Events, dropped gaps and levels of one descent (mutable, local to `gap_descent`)."""

    def __init__(self, problem: RematProblem) -> None:
        self.problem = problem
        self.events = [sorted({v, *problem.succs[v]}) for v in range(problem.n)]
        self.dropped: list[set[int]] = [set() for _ in range(problem.n)]
        delta = np.zeros(problem.n + 1, dtype=np.int64)
        for v, events in enumerate(self.events):
            delta[v] += problem.size[v]
            delta[events[-1] + 1] -= problem.size[v]
        self.level = np.cumsum(delta)[:problem.n]

    def held_over(self, v: int, stage: int) -> int | None:
        """The gap of v held over `stage` (no event of v at it), else None."""
        events = self.events[v]
        k = bisect.bisect_left(events, stage)
        if k == 0 or k == len(events) or events[k] == stage or (k - 1) in self.dropped[v]:
            return None
        return k - 1

    def present_until(self, v: int, stage: int) -> int:
        """The last stage of v's run of presence through `stage`, or v's last event before it
        when v is not present there."""
        events, dropped = self.events[v], self.dropped[v]
        k = bisect.bisect_left(events, stage)
        if k == len(events):
            return events[-1]
        if events[k] != stage and (k - 1) in dropped:
            return events[k - 1]
        while k < len(events) - 1 and k not in dropped:
            k += 1
        return events[k]

    def drop(self, v: int, gap: int, at: int, depth: int) -> _Drop:
        """The effect of dropping gap `gap` of v and recomputing v at stage `at`."""
        size, cost, preds = self.problem.size, self.problem.cost, self.problem.preds
        first = self.events[v][gap]
        ranges = [(first + 1, at - 1, -size[v])] if at - first >= 2 else []
        extra = cost[v]
        events: list[tuple[int, int, bool]] = []
        todo = [(p, at, depth) for p in preds[v]]
        seen: set[tuple[int, int]] = set()
        while todo:
            p, stage, levels = todo.pop()
            if (p, stage) in seen:
                continue
            seen.add((p, stage))
            p_events = self.events[p]
            k = bisect.bisect_left(p_events, stage)
            if k < len(p_events) and p_events[k] == stage:
                continue  # an event of p already: present there
            tail = k == len(p_events)
            if tail and levels == 0:  # held from its last event to `stage`
                ranges.append((p_events[-1] + 1, stage, size[p]))
                events.append((p, stage, False))
            elif tail or (k - 1) in self.dropped[p]:  # recomputed at `stage` too
                extra += cost[p]
                ranges.append((stage, stage, size[p]))
                events.append((p, stage, True))
                todo.extend((q, stage, max(levels - 1, 0)) for q in preds[p])
            else:  # inside a held gap: present already
                events.append((p, stage, False))
        return _Drop(v, gap, at, tuple(ranges), extra, tuple(events))

    def _insert_event(self, v: int, stage: int) -> int:
        """Add an event of v at `stage`; a gap it splits leaves both halves in its state. Returns
        the event's index."""
        events = self.events[v]
        k = bisect.bisect_left(events, stage)
        events.insert(k, stage)
        shifted = set()
        for g in self.dropped[v]:
            if g < k - 1:
                shifted.add(g)
            elif g == k - 1:
                shifted.update((k - 1, k))
            else:
                shifted.add(g + 1)
        self.dropped[v] = shifted
        return k

    def apply(self, step: _Drop) -> None:
        for first, last, added in step.ranges:
            self.level[first:last + 1] += added
        if step.at < self.events[step.value][step.gap + 1]:
            self._insert_event(step.value, step.at)  # the gap splits: both halves held
        self.dropped[step.value].add(step.gap)
        for p, stage, recomputed in step.events:
            k = self._insert_event(p, stage)
            if recomputed:
                self.dropped[p].add(k - 1)

    def schedule(self) -> list[int]:
        recompute: list[list[int]] = [[] for _ in range(self.problem.n)]
        for v, events in enumerate(self.events):
            for gap in self.dropped[v]:
                recompute[events[gap + 1]].append(v)
        return stages_to_sequence(recompute)


def _penalty(levels: np.ndarray, budget: int, power: float) -> float:
    return float((np.maximum(levels - budget, 0).astype(float) ** power).sum())


def gap_descent(problem: RematProblem, budget: int, config: GapDescentConfig = GapDescentConfig(),
                deadline: Deadline | None = None) -> tuple[list[int], int]:
    """(schedule, level): the schedule (stage form) of the descent's last state and its highest
    stage level (module docstring), at least the schedule's replayed peak; within `budget` when
    the descent reached it."""
    state = _State(problem)
    size, cost, power = problem.size, problem.cost, config.penalty_power
    for _ in range(4 * problem.n + 4 * sum(map(len, problem.preds))):  # each step drops a gap
        if int(state.level.max()) <= budget or (deadline is not None and deadline.expired()):
            break
        level = state.level
        options: dict[tuple[int, int, int], float] = {}  # (value, gap, at) -> least possible cost per penalty
        for top in np.argsort(-level, kind="stable")[:config.stages_per_step]:
            top = int(top)
            if level[top] <= budget:
                break
            for v in range(top):
                gap = state.held_over(v, top)
                if gap is None:
                    continue
                first, end = state.events[v][gap], state.events[v][gap + 1]
                inputs_until = min((state.present_until(p, top) for p in problem.preds[v]), default=end)
                for at in {end, top + 1, min(end, max(top + 1, inputs_until))}:
                    saved = level[first + 1:at]
                    most = _penalty(saved, budget, power) - _penalty(saved - size[v], budget, power)
                    if most > 0:
                        options[(v, gap, at)] = cost[v] / most
        best: tuple[float, _Drop] | None = None
        for (v, gap, at), least in sorted(options.items(), key=lambda item: (item[1], item[0])):
            if best is not None and least >= best[0]:
                break  # no later option can score better: the saving bounds the gain, cost[v] the cost
            for depth in range(config.recompute_depth + 1):
                step = state.drop(v, gap, at, depth)
                low = min(first for first, _, _ in step.ranges) if step.ranges else at
                high = max(last for _, last, _ in step.ranges) if step.ranges else at
                before = level[low:high + 1]
                after = before.copy()
                for first, last, added in step.ranges:
                    after[first - low:last - low + 1] += added
                gain = _penalty(before, budget, power) - _penalty(after, budget, power)
                if gain > 0 and (best is None or step.extra_cost / gain < best[0]):
                    best = (step.extra_cost / gain, step)
        if best is None:
            break
        state.apply(best[1])
    return state.schedule(), int(state.level.max())
