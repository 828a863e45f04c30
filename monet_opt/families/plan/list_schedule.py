"""A memory-aware list scheduler for the parallel plan: the heuristic baseline and CP-SAT's warm start.

`list_schedule(problem, recomputed, budget)`: the ops and recomputations of `recompute_graph` (the
simulator's rule: each recomputation just before the first backward op that needs it) taken in that
graph's order; each starts on the core, among those that can run it, where it finishes earliest, at
the earliest cycle at which its core is free for as long as it runs (in a gap between the tasks
already on it, or after them), its inputs are written
(and, for a recomputation, the op it repeats has ended and every task placed before it has started:
its copy is held from its start), its DRAM link has a gap as long as its DRAM cycles, its working set
and its outputs kept on chip fit its local memory while it runs, and its outputs fit DRAM (and
those kept on chip, their memory) from then on: every value already
written counts until its last reader has ended, and as long as a reader is not yet placed, for ever
(so no later placement can push DRAM above the budget). When some task never fits, the answer names
it.

`best_list_schedule`: the list schedule without recomputation, then, while a task finds no room, one
more recomputed candidate among those DRAM holds across that task for the backward pass (`relief`:
most bytes per recomputation cycle first, as in Chen's heuristic, standalone recomputations before
chains), or, when none is left, one more value kept on chip (`on_chip_relief`: the largest eligible
value DRAM holds while that task would run), until the schedule fits.

`within_reach` adds the splitting of fused stacks to that loop; `grow_fusion` goes the other way,
from a plan over unfused ops (another plan's residencies) back to as many fused stacks as still fit.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from monet_opt.families.plan.problem import CoreOption, ParallelPlan, PlanProblem
from monet_opt.model.workload.ir import Graph, Phase, TensorRole
from monet_opt.schedule.plan import RECOMPUTE_SUFFIX, serial_sequence
from monet_opt.schedule.simulate import recompute_graph
from monet_opt.solving.common import Deadline, OutOfTime


@dataclass
class _Occupancy:
    """Bytes held over time, as (cycle -> change) events: `levels[i]` is the level from `times[i]`
    until the next event time (0 before the first), `suffix_max[i]` the highest level from then on.
    An interval held "for ever" is an allocation whose release is added later (`release`)."""

    deltas: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    times: list[int] = field(default_factory=list)
    levels: list[int] = field(default_factory=list)
    suffix_max: list[int] = field(default_factory=list)
    stale: bool = False

    def hold(self, start: int, size: int) -> None:
        self.deltas[start] += size
        self.stale = True

    def release(self, end: int, size: int) -> None:
        self.deltas[end] -= size
        self.stale = True

    def _refresh(self) -> None:
        if not self.stale:
            return
        self.times = sorted(self.deltas)
        level, self.levels = 0, []
        for t in self.times:
            level += self.deltas[t]
            self.levels.append(level)
        self.suffix_max = self.levels[:]
        for i in range(len(self.suffix_max) - 2, -1, -1):
            self.suffix_max[i] = max(self.suffix_max[i], self.suffix_max[i + 1])
        self.stale = False

    def fits_from(self, t: int, size: int, capacity: int) -> int | None:
        """The earliest cycle >= t from which the level plus `size` stays within `capacity` for ever
        (None: never)."""
        self._refresh()
        j = bisect.bisect_right(self.times, t) - 1
        highest = self.suffix_max[j] if j >= 0 else max([0, *self.suffix_max[:1]])
        if highest + size <= capacity:
            return t
        for i in range(j + 1, len(self.times)):
            if self.suffix_max[i] + size <= capacity:
                return self.times[i]
        return None

    def fits_during(self, t: int, length: int, size: int, capacity: int) -> int | None:
        """The earliest cycle c >= t at which [c, c + length) holds `size` more within `capacity`
        (None: never)."""
        if size > capacity:
            return None
        self._refresh()
        candidates = [t] + self.times[bisect.bisect_right(self.times, t):]
        for c in candidates:
            j = bisect.bisect_right(self.times, c) - 1
            highest = self.levels[j] if j >= 0 else 0
            k = j + 1
            while k < len(self.times) and self.times[k] < c + length:
                highest = max(highest, self.levels[k])
                k += 1
            if highest + size <= capacity:
                return c
        return None


def _gap(reserved: list[tuple[int, int]], t: int, length: int) -> int:
    """The earliest cycle >= t at which a core or DRAM link with `reserved` intervals (sorted,
    disjoint) is free for `length` cycles."""
    first = max(bisect.bisect_right(reserved, (t, t)) - 1, 0)  # the last interval that starts by t
    for i in range(first, len(reserved)):
        start, end = reserved[i]
        if end <= t:
            continue
        if start >= t + length:
            break
        t = end
    return t


@dataclass
class _State:
    """What the tasks placed so far hold."""

    cores: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    dram: _Occupancy = field(default_factory=_Occupancy)
    local: dict[str, _Occupancy] = field(default_factory=lambda: defaultdict(_Occupancy))
    buses: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    start_of: dict[str, int] = field(default_factory=dict)
    end_of: dict[str, int] = field(default_factory=dict)
    core_of: dict[str, str] = field(default_factory=dict)
    spread: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scheduled:
    """A list schedule (None: none), or the task that found no room, the graph it was a task of, and
    the tasks (name -> ops) in the order the scheduler took them."""

    plan: ParallelPlan | None
    blocked_at: str | None = None
    graph: Graph | None = None
    order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Fixed:
    """Choices a caller makes for the list scheduler: the core of every task and recomputation (the
    GA's genome; None: the scheduler's choice), and the values kept on chip (held in their writer's
    memory, over the lifetime they would have in DRAM; their readers run on that memory)."""

    core_of: Mapping[str, str] | None = None
    on_chip: frozenset[str] = frozenset()


def list_schedule(problem: PlanProblem, recomputed: frozenset[str], budget_bytes: int,
                  deadline: Deadline | None = None, fixed: Fixed | None = None) -> Scheduled:
    """See the module docstring; with `fixed`, each task on its given core, the given values on chip
    but those recomputed (None when a value on chip would be written and read in different memories). OutOfTime when
    `deadline` passes."""
    graph = recompute_graph(problem.graph, recomputed)
    stacks = {**problem.stack_ops, **{op.name: (op.name,) for op in graph.ops if op.phase is Phase.RECOMPUTE}}
    task_of = {op: task for task, ops in stacks.items() for op in ops}
    on_chip = fixed.on_chip - recomputed if fixed is not None else frozenset()  # a recomputed value is not kept
    dram_capacity = min(budget_bytes, problem.dynamic_dram_capacity_bytes())
    state = _State()
    unplaced_readers = {t: {task_of[r] for r in graph.consumers[t]} - {task_of.get(graph.producer.get(t))}
                        for t in graph.tensors}  # the tasks that read t from outside the task that writes it
    for name, tensor in graph.tensors.items():
        if not tensor.is_static and name not in graph.producer and graph.consumers[name]:
            state.dram.hold(0, tensor.size_bytes)  # a network input, released at its last reader's end
    order = serial_sequence(graph, stacks)
    home: dict[str, str] = {}  # value on chip -> the memory its writer keeps it in
    for task in order:
        if deadline is not None:
            deadline.check()
        ops = [graph.op_by_name[op] for op in stacks[task]]
        inputs = list(dict.fromkeys(t for op in ops for t in op.inputs
                                    if t not in graph.producer or task_of[graph.producer[t]] != task))
        absorbed = recomputed.intersection(problem.absorbable.get(task, ()))
        outputs = [t for op in ops for t in op.outputs if not graph.tensors[t].is_static
                   and t not in problem.internal and t not in absorbed]
        ready = max((state.end_of[task_of[graph.producer[t]]] for t in inputs if t in graph.producer), default=0)
        if ops[0].phase is Phase.RECOMPUTE:  # as late as the list allows: its copy is held from its start
            ready = max(ready, state.end_of[task_of[ops[0].forward_op]], max(state.start_of.values(), default=0))
        kept = on_chip.intersection(problem.touching[task])
        variant = Variant(absorbed, kept, None if fixed is None or fixed.core_of is None else fixed.core_of[task],
                          frozenset(home[t] for t in kept if t in home))
        placed = _place(problem, task, variant, ready, _bytes(graph, outputs, on_chip), state, dram_capacity)
        if placed is None:
            return Scheduled(None, task, graph, {t: stacks[t] for t in order})
        option, start = placed
        home.update({t: option.memories[0] for t in outputs if t in on_chip})
        _occupy(state, task, option, start)
        for t in outputs:
            memory = state.local[home[t]] if t in on_chip else state.dram
            memory.hold(start, graph.tensors[t].size_bytes)
            if not graph.consumers[t]:
                memory.release(start + option.duration_cycles, graph.tensors[t].size_bytes)
        for t in inputs:
            readers = unplaced_readers[t]
            readers.discard(task)
            if not readers and not graph.tensors[t].is_static:
                producer = graph.producer.get(t)
                last = max(state.end_of[task_of[r]] for r in graph.consumers[t])
                written = state.end_of[task_of[producer]] if producer is not None else 0
                memory = state.local[home[t]] if t in on_chip else state.dram
                memory.release(max(last, written), graph.tensors[t].size_bytes)
    return Scheduled(ParallelPlan(recomputed, state.core_of, state.start_of, on_chip, spread=state.spread))


def _bytes(graph: Graph, outputs: list[str], on_chip: frozenset[str]) -> tuple[int, int]:
    """(bytes written to DRAM, bytes kept on chip) of a task's outputs."""
    kept = sum(graph.tensors[t].size_bytes for t in outputs if t in on_chip)
    return sum(graph.tensors[t].size_bytes for t in outputs) - kept, kept


def _occupy(state: _State, task: str, option: CoreOption, start: int) -> None:
    """The task placed: its cores, DRAM links and working sets taken."""
    end = start + option.duration_cycles
    state.start_of[task], state.end_of[task], state.core_of[task] = start, end, option.core
    if option.spread:
        state.spread[task] = option.cores
    for core in option.cores:
        bisect.insort(state.cores[core], (start, end))
    for bus in option.buses:
        bisect.insort(state.buses[bus], (start, start + option.bus_cycles))
    for memory, size in option.working_sets:
        if option.duration_cycles:
            state.local[memory].hold(start, size)
            state.local[memory].release(end, size)


@dataclass(frozen=True)
class Variant:
    """Which options of a task may run it: those absorbing `absorbed`, with `on_chip` on chip, on
    `core` (None: any), and in the memory of `homes` (the memories its on-chip inputs are in: one,
    or none when they disagree)."""

    absorbed: frozenset[str]
    on_chip: frozenset[str]
    core: str | None
    homes: frozenset[str] = frozenset()

    def admits(self, option: CoreOption) -> bool:
        return (not option.group and option.absorbed == self.absorbed and option.on_chip == self.on_chip
                and self.core in (None, option.core) and all(option.memories == (m,) for m in self.homes))


def _place(problem: PlanProblem, task: str, variant: Variant, ready: int, written: tuple[int, int], state: _State,
           dram_capacity: int) -> tuple[CoreOption, int] | None:
    """The option of `variant` and start of `task` that finish earliest (then least energy, then the
    first core), or None when it fits nowhere. `written`: bytes its outputs put in DRAM and on chip."""
    best: tuple[int, float, int, CoreOption, int] | None = None
    for rank, option in enumerate(o for o in problem.options[task] if variant.admits(o)):
        start = _earliest(problem, option, ready, written, state, dram_capacity)
        if start is not None:
            key = (start + option.duration_cycles, option.energy_pj, rank, option, start)
            if best is None or key[:3] < best[:3]:
                best = key
    return None if best is None else (best[3], best[4])


def _earliest(problem: PlanProblem, option: CoreOption, t: int, written: tuple[int, int], state: _State,
              dram_capacity: int) -> int | None:
    """The earliest cycle >= t at which `option` has its DRAM links, its local memories and room in
    DRAM (and in its memory, for values it keeps on chip) for ever."""
    to_dram, kept = written
    while True:
        moved = t
        for bus in option.buses:
            moved = _gap(state.buses[bus], moved, option.bus_cycles)
        for core in option.cores:
            moved = _gap(state.cores[core], moved, option.duration_cycles)
        moved = state.dram.fits_from(moved, to_dram, dram_capacity)
        if moved is not None and kept:
            memory = option.memories[0]
            moved = state.local[memory].fits_from(moved, kept, problem.local_capacity_bytes(memory))
        if moved is None:
            return None
        for memory, size in option.working_sets if option.duration_cycles else ():
            held = kept if memory == option.memories[0] else 0  # its outputs kept on chip count while it runs
            moved = state.local[memory].fits_during(moved, option.duration_cycles, size + held,
                                                    problem.local_capacity_bytes(memory))
            if moved is None:
                return None
        if moved == t:
            return t
        t = moved


def relief(problem: PlanProblem, recomputed: frozenset[str], blocked: Scheduled,
           on_chip: frozenset[str] = frozenset()) -> str | None:
    """The candidate to recompute next when `blocked` found no room at a task: among the candidates
    held across that task only for backward readers after it (written, every forward reader placed
    before it) and not kept `on_chip`, the one that frees most bytes per cycle of its producer's
    fastest run; first those whose recomputation reads only kept values (a chain of recomputations
    runs together, before the earliest backward reader among them, and holds every copy at once).
    None: no candidate is."""
    original, saved = problem.graph, problem.graph.saved_for_backward

    def alone(t: str) -> bool:
        inputs = original.op_by_name[original.producer[t]].inputs
        return all(original.tensors[x].role is not TensorRole.ACTIVATION or (x in saved and x not in recomputed)
                   for x in inputs)

    def ratio(t: str) -> float:
        fastest = min(o.duration_cycles for o in problem.options[original.producer[t] + RECOMPUTE_SUFFIX]
                      if not o.group)
        return original.tensors[t].size_bytes / max(fastest, 1)

    held = [t for t in held_for_backward(problem, blocked)
            if t in problem.candidates and t not in recomputed and t not in on_chip]
    return min(held, key=lambda t: (not alone(t), -ratio(t), t), default=None)


def on_chip_relief(problem: PlanProblem, decided: frozenset[str], blocked: Scheduled) -> str | None:
    """The value to keep on chip next when no recomputation relieves `blocked`: the largest of the
    values eligible on chip (and not yet `decided`) that DRAM holds while the blocked task would run
    (written before it, read by it or after it) and that some local memory could hold. None: none is."""
    largest = max(problem.local_capacity_bytes(m) for m in problem.hw.memories)
    held = [t for t in _held_across(problem, blocked, forward_done=False, read_at=True) if t in problem.on_chip_eligible
            and t not in decided and problem.graph.tensors[t].size_bytes <= largest]
    return max(held, key=lambda t: (problem.graph.tensors[t].size_bytes, t), default=None)


def held_for_backward(problem: PlanProblem, blocked: Scheduled) -> list[str]:
    """The saved activations DRAM holds across the task at which `blocked` found no room only for
    backward readers after it (written and read by every forward reader before it)."""
    return _held_across(problem, blocked, forward_done=True)


def _held_across(problem: PlanProblem, blocked: Scheduled, forward_done: bool, read_at: bool = False) -> list[str]:
    """The saved activations written before the blocked task and read after it (`read_at`: or by it;
    with `forward_done`, every forward reader before it)."""
    graph, original = blocked.graph, problem.graph
    assert graph is not None and blocked.blocked_at is not None
    position = {op: k for k, ops in enumerate(blocked.order.values()) for op in ops}  # op -> its task's place
    at = position[blocked.order[blocked.blocked_at][0]]

    def held_across(t: str) -> bool:
        readers = graph.consumers[t]
        forward = [r for r in readers if graph.op_by_name[r].phase is Phase.FORWARD]
        return (position[original.producer[t]] < at and any(position[r] > at - read_at for r in readers)
                and (not forward_done or all(position[r] < at for r in forward)))

    return [t for t in original.saved_for_backward if t in graph.tensors and t in original.producer
            and original.tensors[t].role is TensorRole.ACTIVATION and held_across(t)]


def _stacks_to_split(problem: PlanProblem, blocked: Scheduled, nearest: int) -> tuple[str, ...]:
    """The fused stacks to split when no recomputation relieves `blocked`: the blocked task itself when
    fused, else the fused stack that writes the most bytes DRAM holds across it for the backward pass
    without their being candidates (fusion keeps them from being recomputed), else the `nearest`
    fused stacks the scheduler took nearest to it (ties: the earlier): near the blocked task, a
    stack's outputs written at once and its values kept from recomputation are the likeliest to hold
    DRAM there. Empty: no fused stack is left."""
    stack_ops = problem.stack_ops
    if blocked.blocked_at in stack_ops and len(stack_ops[blocked.blocked_at]) > 1:
        return (blocked.blocked_at,)
    written: dict[str, int] = defaultdict(int)
    for t in held_for_backward(problem, blocked):
        task = problem.task_of[problem.graph.producer[t]]
        if t not in problem.candidates and len(stack_ops[task]) > 1:
            written[task] += problem.graph.tensors[t].size_bytes
    if written:
        return (max(written, key=lambda task: (written[task], task)),)
    tasks = list(blocked.order)
    at = tasks.index(blocked.blocked_at)
    fused = sorted((abs(k - at), k, task) for k, task in enumerate(tasks) if len(stack_ops.get(task, ())) > 1)
    return tuple(task for _, _, task in fused[:nearest])


def best_list_schedule(problem: PlanProblem, budget_bytes: int, deadline: Deadline) -> ParallelPlan | None:
    """The list schedule with no recomputation; while it finds no room at some task, one more
    recomputed candidate (`relief`). None when no candidate relieves the blocked task (or time runs
    out first)."""
    return within_reach(problem, budget_bytes, deadline, split=False)[1]


def within_reach(problem: PlanProblem, budget_bytes: int, deadline: Deadline, split: bool
                 ) -> tuple[PlanProblem, ParallelPlan | None]:
    """`best_list_schedule`, and with `split`, when no candidate relieves a blocked task, fused
    stacks' ops kept alone (`_stacks_to_split`: the blocked stack, or the one whose values held
    across the blocked task fusion keeps from being recomputed, or else the stacks nearest to it: 1,
    2, 4, ... of them in successive rounds; `PlanProblem.splitting`) and the search started again: a
    fused stack writes all its outputs at once and keeps the values inside it from being recomputed,
    which can lift DRAM above the budget whatever is recomputed. Returns the problem (split or not)
    and the schedule (None: none reached the budget in time)."""
    recomputed: frozenset[str] = frozenset()
    on_chip: frozenset[str] = frozenset()
    nearest = 1
    try:
        while True:
            scheduled = list_schedule(problem, recomputed, budget_bytes, deadline, Fixed(on_chip=on_chip))
            if scheduled.plan is not None:
                return problem, scheduled.plan
            chosen = relief(problem, recomputed, scheduled, on_chip)
            if chosen is not None:
                recomputed |= {chosen}
                continue
            kept = on_chip_relief(problem, recomputed | on_chip, scheduled)
            if kept is not None:
                on_chip |= {kept}
                continue
            stacks = _stacks_to_split(problem, scheduled, nearest) if split else ()
            if not stacks:
                return problem, None
            problem, recomputed, on_chip = problem.splitting(*stacks), frozenset(), frozenset()
            nearest *= 2
    except OutOfTime:
        return problem, None


GROW_RELIEF_STEPS = 20
"""How many values `grow_fusion` may recompute or keep on chip to put one fused stack back."""


def grow_fusion(problem: PlanProblem, start: ParallelPlan, budget_bytes: int, deadline: Deadline
                ) -> tuple[PlanProblem, ParallelPlan]:
    """A partition between `problem`'s and every op alone, and its list schedule, from `start`: a plan
    within the budget of the problem with every fused stack split (e.g. the exact serial checkpoint
    plan). The relief loop (`within_reach`) cannot find such plans where fused stacks hold DRAM above
    the budget until the right values are recomputed; a plan over unfused ops shows which.
    1. Shrink: the list schedule of the whole partition with `start`'s recomputed values (those the
       partition has) and none on chip; while it finds no room, the fused stack `_stacks_to_split`
       names is split; when no partition fits so, the same with `start`'s on-chip values too (a
       fused stack's working set fills the local memory that small values kept on chip would
       share, while in DRAM they weigh little).
    2. Grow: each stack split so far, by decreasing latency gain (its ops' fastest cycles alone minus
       its own fastest), put back when, with at most `GROW_RELIEF_STEPS` more values recomputed
       (`relief`) or kept on chip (`on_chip_relief`), the list schedule fits; passes over the stacks
       still split while one was put back (what one stack recomputes can make room for another).
    Returns the cheapest of these plans and `start` with its partition (the plan found so far when
    time runs out)."""
    fused = [task for task, ops in problem.stack_ops.items() if len(ops) > 1]
    alone = problem.splitting(*fused)

    def fastest(within: PlanProblem, task: str) -> int:
        return min(option.duration_cycles for option in within.options[task])

    def scheduled(candidate: PlanProblem, recomputed: frozenset[str], on_chip: frozenset[str]) -> Scheduled:
        return list_schedule(candidate, recomputed.intersection(candidate.candidates), budget_bytes, deadline,
                             Fixed(on_chip=on_chip.intersection(candidate.on_chip_eligible)))

    def cost(candidate: PlanProblem, plan: ParallelPlan) -> float:
        return candidate.weights.of(*plan.cost(candidate))

    best = (alone, start)
    try:
        recomputed = start.recomputed
        for on_chip in dict.fromkeys((frozenset(), start.on_chip)):
            candidate = problem
            found = scheduled(candidate, recomputed, on_chip)
            while found.plan is None and (stacks := _stacks_to_split(candidate, found, 1)):
                candidate = candidate.splitting(*stacks)
                found = scheduled(candidate, recomputed, on_chip)
            if found.plan is not None:
                break
        else:
            return best
        if cost(candidate, found.plan) < cost(alone, start):
            best = (candidate, found.plan)
        gain = {task: sum(fastest(alone, op) for op in problem.stack_ops[task]) - fastest(problem, task)
                for task in candidate.split}
        split, put_back = set(candidate.split), True
        while put_back:  # passes over the stacks still split, while one finds room
            put_back = False
            for task in sorted(split, key=lambda t: (-gain[t], t)):
                trial = problem.splitting(*sorted(split - {task}))
                more_recomputed, more_on_chip = recomputed, on_chip
                for _ in range(GROW_RELIEF_STEPS):
                    found = scheduled(trial, more_recomputed, more_on_chip)
                    if found.plan is not None:
                        break
                    chosen = relief(trial, more_recomputed.intersection(trial.candidates), found,
                                    more_on_chip.intersection(trial.on_chip_eligible))
                    if chosen is not None:
                        more_recomputed |= {chosen}
                        continue
                    kept = on_chip_relief(trial, more_recomputed | more_on_chip, found)
                    if kept is None:
                        break
                    more_on_chip |= {kept}
                if found.plan is not None:
                    split, recomputed, on_chip, put_back = split - {task}, more_recomputed, more_on_chip, True
                    if cost(trial, found.plan) < cost(*best):
                        best = (trial, found.plan)
    except OutOfTime:
        pass
    return best
