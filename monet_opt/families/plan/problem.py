"""The parallel memory-safe plan of a training graph (formulations/plan.md): which core runs each op
and when, and which saved activations are recomputed (and where and when), so that the step is as
fast (or as frugal) as possible while DRAM's dynamic bytes stay within the activation budget and
every local memory within its capacity or budget.

The space (`PlanProblem.space`, formulations/plan.md section 1): every op alone, or the stacks of a
fixed fusion partition, on the cores that can run them; every start time; each saved activation
kept in DRAM, recomputed by one recompute op of its producer on any core that can run it (a
*candidate*, `candidates`; the simulator's recomputation rule, `simulate.recompute_graph`: what a
recomputation reads, and which other recomputations it needs), or kept on chip in one local
memory (`on_chip_eligible`); every other value in DRAM. Outside it: other partitions, link copies.

A plan's execution and memory follow the validation scheduler's rules, here for a schedule given
by its start times (`Plan.release_cycles`): an op holds its core for its latency and its core's DRAM
link for its DRAM cycles from its start; a value occupies DRAM from its producer's start to the end
of its last reader (its producer's end when it has none; network inputs from cycle 0); a running op
occupies its core's local memory with its working set.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property

from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.space import MAX_GROUP_OPS, CostWeights, unsaved_links
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.hardware.model import DRAM, Accelerator
from monet_opt.model.workload.ir import Graph, Phase, TensorRole
from monet_opt.families.allocation.problem import FusedStack, fused_stacks, interchangeable
from monet_opt.schedule.plan import (
    RECOMPUTE_SUFFIX, Plan, Residency, recompute_group_name, serial_sequence, stack_name,
)


@dataclass(frozen=True)
class CoreOption:
    """Running one task (an op, a fused stack or a recomputation) on `core`: for `duration_cycles`
    it occupies `cores` (`core` first; a stack whose ops run on several cores occupies them all) and
    each memory of `working_sets` with that many bytes; it holds each DRAM link of `buses` for its
    first `bus_cycles` (none: no DRAM traffic); it costs `energy_pj`. `placement`: the core of each
    op of the task, in its order; `absorbed`: the values of a fused stack that it passes inside
    (never writing them) because they are recomputed for the backward pass (`PlanProblem.absorbable`);
    `on_chip`: the values it reads or writes that are kept ON_CHIP (`PlanProblem.on_chip_eligible`),
    in the one local memory of its cores (`memories`), among those it may (`touching`: the eligible
    values it writes or reads from outside); `group`: for the recomputation of the last op of a
    candidate group (`PlanProblem.groups`), the group's ops when it runs them as one fused stack
    (empty: the op alone); `spread`: over more cores than its default placement (`PlanProblem.spread`):
    an op alone split across `cores`, one part on each (its values in DRAM), or a fused stack whose
    MAC ops run each on its own core of their class, tiles passed between them."""

    core: str
    cores: tuple[str, ...]
    placement: tuple[str, ...]
    duration_cycles: int
    energy_pj: float
    buses: tuple[str, ...]
    bus_cycles: int
    working_sets: tuple[tuple[str, int], ...]
    memories: tuple[str, ...]
    absorbed: frozenset[str] = frozenset()
    on_chip: frozenset[str] = frozenset()
    touching: frozenset[str] = frozenset()
    group: tuple[str, ...] = ()
    spread: bool = False


def _subsets(values: tuple[str, ...]) -> list[frozenset[str]]:
    return [frozenset(subset) for k in range(len(values) + 1) for subset in itertools.combinations(values, k)]


def _option(hw: Accelerator, core: str, placement: tuple[str, ...], cost: Cost, touching: tuple[str, ...],
            absorbed: frozenset[str] = frozenset(), on_chip: frozenset[str] = frozenset(),
            group: tuple[str, ...] = (), split: tuple[str, ...] = (), spread: bool = False) -> CoreOption:
    cores = split or tuple(dict.fromkeys((core, *placement)))
    buses = tuple(dict.fromkeys(hw.link_between(DRAM, c).name for c in cores)) if cost.dram_cycles else ()
    working_sets = cost.working_set_by_memory or ((hw.core(core).memory, cost.working_set_bytes),)
    memories = tuple(dict.fromkeys(hw.core(c).memory for c in cores))
    return CoreOption(core, cores, placement, cost.latency_cycles, cost.energy_pj, buses, cost.dram_cycles,
                      tuple((m, b) for m, b in working_sets if b), memories, absorbed, on_chip, frozenset(touching),
                      group, spread or bool(split))


MAX_SPLIT_CORES = 4
"""Up to this many cores that can run an op, every subset of two or more is a split option of it;
above, only all of them (the subsets would outnumber every other option)."""


def split_placements(hw: Accelerator, eligible: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The sets of cores an op that `eligible` cores can run may be split across, each in the
    accelerator's order (`MAX_SPLIT_CORES`)."""
    if len(eligible) > MAX_SPLIT_CORES:
        return [eligible]
    return [subset for k in range(2, len(eligible) + 1) for subset in itertools.combinations(eligible, k)]


def spread_placements(hw: Accelerator, stack: FusedStack) -> list[tuple[str, ...]]:
    """The per-op cores of `stack` with the ops on its movable core each on a distinct core of the
    movable core's class (`interchangeable`, without the stack's other cores), in every order: a
    fused stack whose ops pass tiles from core to core (none with fewer than two such ops)."""
    moved = [k for k, core in enumerate(stack.cores) if core == stack.movable]
    free = [core for core in interchangeable(hw, stack.movable) if core == stack.movable or core not in stack.cores]
    if len(moved) < 2:
        return []
    out = []
    for chosen in itertools.permutations(free, len(moved)):
        placed = list(stack.cores)
        for k, core in zip(moved, chosen, strict=True):
            placed[k] = core
        out.append(tuple(placed))
    return out


Stacks = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
"""A fusion partition: (ops in order, the core of each op) per stack."""


@dataclass(frozen=True)
class PlanProblem:
    """A training graph on an accelerator, the cost weights to minimise, the local budgets (memory
    -> bytes below its capacity; the cost model tiles every op to fit them) and, optionally, a fixed
    fusion partition (`stacks`; None: every op alone). A fused stack may move, as a whole, to the
    cores interchangeable with its main core (`allocation.problem.fused_stacks`); an op alone and a
    recomputation to any core that can run it."""

    graph: Graph
    hw: Accelerator
    weights: CostWeights
    local_budget_bytes: Mapping[str, int]
    stacks: Stacks | None = None
    split: tuple[str, ...] = ()  # fused stacks of the given partition whose ops are kept alone (`splitting`)
    note: str = ""  # why the space is what it is, when a caller chose it (ends the space's statement)
    starts: tuple[ParallelPlan, ...] = ()  # plans of this problem its caller found: every method's first candidates
    spread: bool = False  # MAC ops alone also split across cores, fused stacks' MAC ops over their class

    @cached_property
    def table(self) -> CostTable:
        return CostTable(self.graph, self.hw, self.local_budget_bytes)

    def splitting(self, *stacks: str) -> PlanProblem:
        """The problem with the ops of each fused stack of `stacks` alone (the cost table shared)."""
        assert self.stacks is not None
        broken = {self.stack_ops[stack] for stack in stacks}
        cores_of = dict(self.stacks)
        kept = tuple(s for s in self.stacks if s[0] not in broken)
        alone = tuple(((op,), (core,)) for ops in sorted(broken) for op, core in zip(ops, cores_of[ops], strict=True))
        split = replace(self, stacks=kept + alone, split=(*self.split, *stacks), starts=())
        split.__dict__["table"] = self.table  # a cached_property: the prices do not depend on the partition
        return split

    @cached_property
    def stack_ops(self) -> Mapping[str, tuple[str, ...]]:
        """task name -> its ops, in a topological order of the stacks (each op alone without a partition)."""
        if self.stacks is None:
            return {op.name: (op.name,) for op in self.graph.ops}
        by_name = {stack_name(ops): ops for ops, _ in self.stacks}
        return {name: by_name[name] for name in serial_sequence(self.graph, by_name)}

    @cached_property
    def task_of(self) -> Mapping[str, str]:
        """op -> the task (stack) that runs it."""
        return {op: task for task, ops in self.stack_ops.items() for op in ops}

    @cached_property
    def outside_inputs(self) -> Mapping[str, tuple[str, ...]]:
        """task -> the values its ops read that it does not write itself (network inputs included),
        once each, in the order its ops read them."""
        graph, task_of = self.graph, self.task_of
        return {task: tuple(dict.fromkeys(t for op in ops for t in graph.op_by_name[op].inputs
                                          if t not in graph.producer or task_of[graph.producer[t]] != task))
                for task, ops in self.stack_ops.items()}

    @cached_property
    def options(self) -> Mapping[str, tuple[CoreOption, ...]]:
        """task -> its options: every stack of `stack_ops` and the recomputation of every op of
        `cloneable` (an op alone on any core that can run it; the last op of a candidate group also
        the group fused, on any core that can run the group as one stack). InfeasibleError naming a
        task that no core can run."""
        out: dict[str, tuple[CoreOption, ...]] = {}
        fused = {} if self.stacks is None else {
            s.name: s for s in fused_stacks(self.hw, [(stack_name(ops), ops, cores) for ops, cores in self.stacks
                                                      if len(ops) > 1])}
        alone = [(task, ops[0]) for task, ops in self.stack_ops.items() if task not in fused]
        alone += [(op + RECOMPUTE_SUFFIX, op) for op in self.cloneable]
        for task, op in alone:
            out[task] = tuple(_option(self.hw, c.name, (c.name,), cost, self.touching[task], on_chip=on)
                              for c in self.hw.cores if isinstance(self.table.get((op,), c.name), Cost)
                              for on in _subsets(self.touching[task])
                              if isinstance(cost := self.table.get((op,), c.name, on), Cost))
            if self.spread and task in self.stack_ops:
                eligible = tuple(o.core for o in out[task] if not o.on_chip)
                out[task] += tuple(_option(self.hw, cores[0], (cores[0],), cost, self.touching[task], split=cores)
                                   for cores in split_placements(self.hw, eligible)
                                   if isinstance(cost := self.table.get((op,), cores), Cost))
        for group, touching in self.groups.items():
            out[group[-1] + RECOMPUTE_SUFFIX] += tuple(
                _option(self.hw, c.name, (c.name,), cost, touching, on_chip=on, group=group)
                for c in self.hw.cores if isinstance(self.table.get(group, c.name), Cost)
                for on in _subsets(touching) if isinstance(cost := self.table.get(group, c.name, on), Cost))
        for task, stack in fused.items():
            others = set(stack.cores) - {stack.movable}
            out[task] = tuple(_option(self.hw, core, stack.on(core), cost, self.touching[task], absorbed, on)
                              for core in interchangeable(self.hw, stack.movable) if core not in others
                              for absorbed in _subsets(self.absorbable[task])
                              for on in (_subsets(self.touching[task]) if self._one_memory(stack.on(core))
                                         else [frozenset()])
                              if isinstance(cost := self.table.get(stack.ops, stack.on(core), absorbed | on), Cost))
            if self.spread:
                out[task] += tuple(_option(self.hw, placed[stack.cores.index(stack.movable)], placed, cost,
                                           self.touching[task], absorbed, spread=True)
                                   for placed in spread_placements(self.hw, stack)
                                   for absorbed in _subsets(self.absorbable[task])
                                   if isinstance(cost := self.table.get(stack.ops, placed, absorbed), Cost))
        for task, options in out.items():
            if not options:
                raise InfeasibleError(f"{task!r} can run on no core of {self.hw.name!r}")
        return out

    def _one_memory(self, cores: tuple[str, ...]) -> bool:
        return len({self.hw.core(c).memory for c in cores}) == 1

    @cached_property
    def on_chip_eligible(self) -> tuple[str, ...]:
        """Saved activations that may be kept ON_CHIP: not outputs of the graph, no larger than some
        local memory, and each of the tasks that write or read them (from outside the writer) has
        a core whose memory is that of the others (every reader then finds the value where it was
        written: link copies are outside this space)."""
        graph, task_of = self.graph, self.task_of
        largest = max(m.capacity_bytes for m in self.hw.memories.values())
        fused = {ops[0]: cores for ops, cores in self.stacks or () if len(ops) > 1}

        def memories(task: str) -> set[str]:
            ops = self.stack_ops[task]
            if len(ops) == 1:
                return {c.memory for c in self.hw.cores if isinstance(self.table.get(ops, c.name), Cost)}
            cores = {self.hw.core(c).memory for c in fused[ops[0]]}
            return cores if len(cores) == 1 else set()

        out = []
        for t in graph.saved_for_backward:
            if graph.tensors[t].role is not TensorRole.ACTIVATION or t in graph.outputs or t in self.internal:
                continue
            if graph.tensors[t].size_bytes > largest:
                continue
            tasks = {task_of[graph.producer[t]]} | {task_of[r] for r in graph.consumers[t]}
            if set.intersection(*(memories(task) for task in tasks)):
                out.append(t)
        return tuple(t for op in graph.ops for t in op.outputs if t in out)

    @cached_property
    def touching(self) -> Mapping[str, tuple[str, ...]]:
        """task -> the ON_CHIP-eligible values it writes or reads from outside (a recomputation: reads)."""
        graph, task_of = self.graph, self.task_of
        eligible = set(self.on_chip_eligible)
        out: dict[str, tuple[str, ...]] = {}
        for task, ops in self.stack_ops.items():
            out[task] = tuple(dict.fromkeys(
                t for op in ops for t in (*graph.op_by_name[op].inputs, *graph.op_by_name[op].outputs)
                if t in eligible and (task_of[graph.producer[t]] != task or t in graph.op_by_name[op].outputs)))
        for op in self.cloneable:
            out[op + RECOMPUTE_SUFFIX] = tuple(dict.fromkeys(t for t in graph.op_by_name[op].inputs if t in eligible))
        return out

    @cached_property
    def internal(self) -> frozenset[str]:
        """Values produced and read only inside one fused stack: they never reach DRAM."""
        graph, task_of = self.graph, self.task_of
        return frozenset(t for task, ops in self.stack_ops.items() if len(ops) > 1 for op in ops
                         for t in graph.op_by_name[op].outputs
                         if graph.consumers[t] and t not in graph.outputs
                         and all(task_of[r] == task for r in graph.consumers[t]))

    @cached_property
    def absorbable(self) -> Mapping[str, tuple[str, ...]]:
        """fused stack -> the candidates it produces whose forward readers are all its own ops:
        recomputed, such a value never leaves the stack (priced on chip, as `CheckpointSpace` does)."""
        graph, task_of = self.graph, self.task_of
        out: dict[str, list[str]] = {task: [] for task, ops in self.stack_ops.items() if len(ops) > 1}
        for t in self.candidates:
            task = task_of[graph.producer[t]]
            forward = [r for r in graph.consumers[t] if graph.op_by_name[r].phase is not Phase.BACKWARD]
            if task in out and forward and all(task_of[r] == task for r in forward):
                out[task].append(t)
        return {task: tuple(values) for task, values in out.items()}

    @cached_property
    def candidates(self) -> tuple[str, ...]:
        """The saved activations that may be recomputed: activations produced by a forward op and
        read by a backward op, not outputs of the graph, in the graph's order; with fused stacks,
        not when a backward reader shares a stack with the producer or with a forward reader (a
        stack reads one version of a value), nor when a recomputation it needs would read a kept
        value internal to a stack (which never reaches DRAM)."""
        graph, task_of = self.graph, self.task_of

        def separable(t: str) -> bool:
            backward = {task_of[r] for r in graph.saved_for_backward[t]}
            forward = {task_of[r] for r in graph.consumers[t] if graph.op_by_name[r].phase is not Phase.BACKWARD}
            return task_of[graph.producer[t]] not in backward and not backward & forward

        def reads_nothing_internal(t: str) -> bool:
            """The recomputations that recomputing t alone needs read no kept value internal to a
            stack (an unsaved one they recompute too, and read the copy)."""
            forced, stack = set(), [graph.producer[t]]
            while stack:
                op = stack.pop()
                if op in forced:
                    continue
                forced.add(op)
                inputs = graph.op_by_name[op].inputs
                if any(x in self.internal and x in graph.saved_for_backward for x in inputs):
                    return False
                stack += [graph.producer[x] for x in inputs if graph.tensors[x].role is TensorRole.ACTIVATION
                          and x not in graph.saved_for_backward]
            return True

        return tuple(t for op in graph.ops if op.phase is Phase.FORWARD for t in op.outputs
                     if t in graph.saved_for_backward and graph.tensors[t].role is TensorRole.ACTIVATION
                     and t not in graph.outputs and separable(t) and reads_nothing_internal(t))
    @cached_property
    def cloneable(self) -> tuple[str, ...]:
        """Forward ops that some choice of recomputed candidates has recomputed: producers of
        candidates, and (transitively) producers of activations that a recomputation reads and that
        are not kept (unsaved, or candidates themselves)."""
        graph, saved = self.graph, self.graph.saved_for_backward
        found: set[str] = set()
        stack = [graph.producer[t] for t in self.candidates]
        while stack:
            op = stack.pop()
            if op in found:
                continue
            found.add(op)
            for x in graph.op_by_name[op].inputs:
                if graph.tensors[x].role is TensorRole.ACTIVATION and (x not in saved or x in self.candidates):
                    stack.append(graph.producer[x])
        return tuple(op.name for op in graph.ops if op.name in found)

    @cached_property
    def groups(self) -> Mapping[tuple[str, ...], tuple[str, ...]]:
        """Candidate fused recomputations (the checkpoint space's `Group`), each -> the values eligible
        on chip that its ops read from outside it: chains of 2 to MAX_GROUP_OPS cloneable ops in which
        every op but the last passes the next op an unsaved value that no other op reads (recomputed
        together, it never leaves the stack) and has no other output that a forward op reads (its
        other outputs are saved for backward readers; the group writes their copies), that some core
        runs as one stack. In the graph's order of their first op, shorter first."""
        graph, eligible = self.graph, set(self.on_chip_eligible)
        next_of = {op: reader for op, (_, reader) in unsaved_links(graph, set(self.cloneable)).items()}
        out: dict[tuple[str, ...], tuple[str, ...]] = {}
        for first in self.cloneable:
            chain = (first,)
            while chain[-1] in next_of and len(chain) < MAX_GROUP_OPS:
                chain += (next_of[chain[-1]],)
                if any(isinstance(self.table.get(chain, c.name), Cost) for c in self.hw.cores):
                    out[chain] = tuple(dict.fromkeys(t for op in chain for t in graph.op_by_name[op].inputs
                                                     if t in eligible))
        return out

    @cached_property
    def static_dram_bytes(self) -> int:
        return sum(t.size_bytes for t in self.graph.tensors.values() if t.is_static)

    @cached_property
    def task_peak_bound_bytes(self) -> int:
        """A lower bound on the dynamic DRAM peak of every plan of the space: while a task runs, the
        values it reads from outside and writes are all held (in DRAM, unless they may stay on chip
        or inside their stack); the largest such sum over the stacks of `stack_ops` (bytes)."""
        graph = self.graph
        elsewhere = set(self.internal) | set(self.on_chip_eligible) | {
            v for values in self.absorbable.values() for v in values}

        def held(task: str) -> int:
            outputs = {t for op in self.stack_ops[task] for t in graph.op_by_name[op].outputs}
            values = outputs.union(self.outside_inputs[task])
            return sum(graph.tensors[t].size_bytes for t in values
                       if not graph.tensors[t].is_static and t not in elsewhere)

        return max((held(task) for task in self.stack_ops), default=0)

    @cached_property
    def latency_bound(self) -> tuple[int, str]:
        """A lower bound on the makespan of every plan of the space (cycles), and what it is: the
        longest chain of dependent tasks, each at its shortest option, or the most work one core or
        one DRAM link must do, each task at its least load there (its duration on a core it
        occupies, its DRAM cycles on a link it holds; the exact model's own rules). Recomputations
        only add tasks, so they are left out."""
        graph, task_of = self.graph, self.task_of
        finish: dict[str, int] = {}
        for task in self.stack_ops:  # in a topological order of the stacks
            before = {task_of[graph.producer[x]] for x in self.outside_inputs[task] if x in graph.producer}
            finish[task] = max((finish[b] for b in before), default=0) + min(
                o.duration_cycles for o in self.options[task])
        bounds = [(max(finish.values(), default=0), "the longest chain of tasks")]
        cores = [c.name for c in self.hw.cores]
        links = sorted({bus for task in self.stack_ops for o in self.options[task] for bus in o.buses})
        for core in cores:
            work = sum(min(o.duration_cycles if core in o.cores else 0 for o in self.options[task])
                       for task in self.stack_ops)
            bounds.append((work, f"the work core {core} must do"))
        for link in links:
            work = sum(min(o.bus_cycles if link in o.buses else 0 for o in self.options[task])
                       for task in self.stack_ops)
            bounds.append((work, f"the DRAM cycles link {link} must carry"))
        return max(bounds, key=lambda bound: bound[0])

    @cached_property
    def energy_bound_pj(self) -> float:
        """A lower bound on the energy of every plan of the space (pJ): each task of `stack_ops` at
        its least-energy option (recomputations only add energy)."""
        return sum(min(o.energy_pj for o in self.options[task]) for task in self.stack_ops)

    @cached_property
    def cost_bound(self) -> tuple[float, str]:
        """A lower bound on the weighted cost (`weights.of`, increasing in latency and energy) of every
        plan of the space, and what it is: of `latency_bound` and `energy_bound_pj`."""
        cycles, what = self.latency_bound
        least_energy = "every task at its least energy"
        named = {"latency": what, "energy": least_energy}.get(self.weights.name, f"{what}; {least_energy}")
        return self.weights.of(cycles, self.energy_bound_pj), named

    def dynamic_dram_capacity_bytes(self) -> int:
        """What DRAM holds besides the static bytes."""
        return self.hw.dram.capacity_bytes - self.static_dram_bytes

    def local_capacity_bytes(self, memory: str) -> int:
        """A local memory's capacity, or its budget when lower."""
        return min(self.hw.memories[memory].capacity_bytes,
                   self.local_budget_bytes.get(memory, self.hw.memories[memory].capacity_bytes))

    def space(self) -> str:
        if self.stacks is None:
            tasks = f"every unfused op of {self.graph.name} on any core of {self.hw.name} that can run it"
        else:
            fused = sum(1 for ops, _ in self.stacks if len(ops) > 1)
            split = "" if not self.split else (f", after {len(self.split)} fused stacks of the fusion stage's answer "
                                               "were split so that the list scheduler reaches the budget")
            tasks = (f"the fixed fusion partition of {self.graph.name} ({len(self.stacks)} stacks, {fused} "
                     f"fused{split}; each fused stack on the cores of {self.hw.name} interchangeable with its own, "
                     "each op alone on any core that can run it)")
        if self.spread:
            tasks += (", a MAC op alone also split along its channels or rows across any two or more of the cores "
                      f"that can run it (all of them only, above {MAX_SPLIT_CORES}), and the MAC ops of a fused stack "
                      "also each on its own core of their class, tiles passed between them")
        return (f"{tasks} at any start time; of the saved activations, {len(self.candidates)} may be recomputed (once, "
                f"on any core that can run their producer) and {len(self.on_chip_eligible)} kept on chip (written and "
                "read in one local memory), the others are in DRAM, as is every other value (link copies are outside "
                "this space" + (", and other partitions" if self.stacks else ", and fusion") + ")"
                + (f"; {self.note}" if self.note else ""))


@dataclass(frozen=True)
class ParallelPlan:
    """The answer: the recomputed candidates, for every task (op, fused stack, recomputation
    `<op>.recompute`) its core and start cycle, the values kept ON_CHIP, and the candidate groups
    (`PlanProblem.groups`) whose recomputation runs as one fused stack (the task of its last op)."""

    recomputed: frozenset[str]
    core_of: Mapping[str, str]
    start_cycles: Mapping[str, int]
    on_chip: frozenset[str] = frozenset()
    groups: frozenset[tuple[str, ...]] = frozenset()
    spread: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # task -> its cores, when spread

    def group_of(self, task: str) -> tuple[str, ...]:
        """The group that `task` (a recomputation) runs fused, or () when it runs its op alone."""
        return next((g for g in self.groups if g[-1] + RECOMPUTE_SUFFIX == task), ())

    def option(self, problem: PlanProblem, task: str) -> CoreOption:
        """The option the plan chose for `task`: its core, its group, and the values it absorbs
        (those of `PlanProblem.absorbable` that are recomputed) and keeps on chip."""
        absorbed = self.recomputed.intersection(problem.absorbable.get(task, ()))
        group = self.group_of(task)
        spread = self.spread.get(task)
        return next(o for o in problem.options[task]
                    if o.core == self.core_of[task] and o.group == group and o.absorbed == absorbed
                    and o.on_chip == self.on_chip.intersection(o.touching)
                    and (o.cores == spread if spread else not o.spread))

    def cost(self, problem: PlanProblem) -> tuple[int, float]:
        """(latency cycles, energy pJ) as its start cycles and the cost model's prices give them."""
        latency, energy = 0, 0.0
        for task, start in self.start_cycles.items():
            option = self.option(problem, task)
            latency = max(latency, start + option.duration_cycles)
            energy += option.energy_pj
        return latency, energy

    def to_plan(self, problem: PlanProblem) -> Plan:
        """The plan the validation scheduler runs: the problem's stacks, each core's tasks and
        recomputations in start order (a group's members listed together, which the simulator fuses
        into the stack `<first op>.recompute+<members - 1>`), each DRAM link's users in start order,
        the start cycles as release cycles."""
        order: dict[str, list[str]] = {c.name: [] for c in problem.hw.cores}
        buses: dict[str, list[str]] = {}
        placement: dict[str, str] = {}
        release: dict[str, int] = {}
        for task in sorted(self.start_cycles, key=lambda t: (self.start_cycles[t], t)):
            option = self.option(problem, task)
            group = option.group
            name = recompute_group_name(group) if group else task
            for core in option.cores:
                order[core] += [op + RECOMPUTE_SUFFIX for op in group] if group else [task]
            for bus in option.buses:
                buses.setdefault(bus, []).append(name)
            release[name] = self.start_cycles[task]
            if task in problem.stack_ops:
                placement.update({op: c for op, c in zip(problem.stack_ops[task], option.placement, strict=True)
                                  if c != option.core})
        return Plan(
            stacks=dict(problem.stack_ops),
            core_of={task: self.core_of[task] for task in problem.stack_ops},
            core_order={c: tuple(o) for c, o in order.items()},
            residency={**{t: Residency.RECOMPUTE for t in sorted(self.recomputed)},
                       **{t: Residency.ON_CHIP for t in sorted(self.on_chip)}},
            recompute_groups=tuple(sorted(self.groups)),
            dram_order={b: tuple(o) for b, o in buses.items()},
            placement=placement,
            release_cycles=release,
            split={task: cores for task, cores in self.spread.items() if len(problem.stack_ops[task]) == 1},
        )
