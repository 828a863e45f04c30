"""The parallel memory-safe plan of a training graph (formulations/plan.md): which core runs each op
and when, and which saved activations are recomputed (and where and when), so that the step is as
fast (or as frugal) as possible while DRAM's dynamic bytes stay within the activation budget and
every local memory within its capacity or budget.

The space (`PlanProblem.space`): every op unfused, on any core that can run it; every start time;
each saved activation a *candidate* (`candidates`) kept in DRAM or recomputed by one recompute op
of its producer on any core that can run it (the simulator's recomputation rule,
`simulate.recompute_graph`: what a recomputation reads, and which other recomputations it needs);
every value in DRAM. Outside it, for now: fusion, on-chip residency and link copies.

A plan's execution and memory follow the validation scheduler's rules, here for a schedule given
by its start times (`Plan.release_cycles`): an op holds its core for its latency and its core's DRAM
link for its DRAM cycles from its start; a value occupies DRAM from its producer's start to the end
of its last reader (its producer's end when it has none; network inputs from cycle 0); a running op
occupies its core's local memory with its working set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.space import CostWeights
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.hardware.model import DRAM, Accelerator
from monet_opt.model.workload.ir import Graph, Phase, TensorRole
from monet_opt.schedule.plan import RECOMPUTE_SUFFIX, Plan, Residency


@dataclass(frozen=True)
class CoreOption:
    """Running one op (or its recomputation) on one core: for `duration_cycles` the core is busy,
    its DRAM link `bus` (None: no DRAM traffic) busy for the first `bus_cycles`, its local `memory`
    holds `working_set_bytes`; it costs `energy_pj`."""

    core: str
    duration_cycles: int
    energy_pj: float
    bus: str | None
    bus_cycles: int
    memory: str
    working_set_bytes: int


@dataclass(frozen=True)
class PlanProblem:
    """A training graph on an accelerator, the cost weights to minimise and the local budgets
    (memory -> bytes below its capacity; the cost model tiles every op to fit them)."""

    graph: Graph
    hw: Accelerator
    weights: CostWeights
    local_budget_bytes: Mapping[str, int]

    @cached_property
    def table(self) -> CostTable:
        return CostTable(self.graph, self.hw, self.local_budget_bytes)

    @cached_property
    def options(self) -> Mapping[str, tuple[CoreOption, ...]]:
        """op -> its options, one per core that can run it (a recomputation has its op's options:
        the same op on the same operands). InfeasibleError naming an op that no core can run."""
        out = {}
        for op in self.graph.ops:
            choices = []
            for core in self.hw.cores:
                cost = self.table.get((op.name,), core.name)
                if isinstance(cost, Cost):
                    bus = self.hw.link_between(DRAM, core.name).name if cost.dram_cycles else None
                    choices.append(CoreOption(core.name, cost.latency_cycles, cost.energy_pj, bus, cost.dram_cycles,
                                              core.memory, cost.working_set_bytes))
            if not choices:
                raise InfeasibleError(f"op {op.name!r} ({op.kind.value}) can run on no core of {self.hw.name!r}")
            out[op.name] = tuple(choices)
        return out

    @cached_property
    def candidates(self) -> tuple[str, ...]:
        """The saved activations that may be recomputed: activations produced by a forward op and
        read by a backward op, not outputs of the graph, in the graph's order."""
        graph = self.graph
        return tuple(t for op in graph.ops if op.phase is Phase.FORWARD for t in op.outputs
                     if t in graph.saved_for_backward and graph.tensors[t].role is TensorRole.ACTIVATION
                     and t not in graph.outputs)

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
    def static_dram_bytes(self) -> int:
        return sum(t.size_bytes for t in self.graph.tensors.values() if t.is_static)

    def dynamic_dram_capacity_bytes(self) -> int:
        """What DRAM holds besides the static bytes."""
        return self.hw.dram.capacity_bytes - self.static_dram_bytes

    def local_capacity_bytes(self, memory: str) -> int:
        return min(self.hw.memories[memory].capacity_bytes,
                   self.local_budget_bytes.get(memory, self.hw.memories[memory].capacity_bytes))

    def space(self) -> str:
        return (f"every unfused op of {self.graph.name} on any core of {self.hw.name} that can run it at any start "
                f"time, each of {len(self.candidates)} saved activations kept in DRAM or recomputed once on any core "
                "that can run its producer; every value in DRAM (fusion, on-chip residency and link copies are "
                "outside this space)")


@dataclass(frozen=True)
class ParallelPlan:
    """The answer: the recomputed candidates, and for every op and recomputation (`<op>.recompute`)
    its core and start cycle."""

    recomputed: frozenset[str]
    core_of: Mapping[str, str]
    start_cycles: Mapping[str, int]

    def to_plan(self, problem: PlanProblem) -> Plan:
        """The plan the validation scheduler runs: every op alone, each core's ops and recomputations
        in start order, each DRAM link's users in start order, the start cycles as release cycles."""
        options = problem.options
        order: dict[str, list[str]] = {c.name: [] for c in problem.hw.cores}
        buses: dict[str, list[str]] = {}
        for task in sorted(self.start_cycles, key=lambda t: (self.start_cycles[t], t)):
            core = self.core_of[task]
            order[core].append(task)
            option = next(o for o in options[task.removesuffix(RECOMPUTE_SUFFIX)] if o.core == core)
            if option.bus is not None:
                buses.setdefault(option.bus, []).append(task)
        ops = [op.name for op in problem.graph.ops]
        return Plan(
            stacks={op: (op,) for op in ops},
            core_of={op: self.core_of[op] for op in ops},
            core_order={c: tuple(o) for c, o in order.items()},
            residency={t: Residency.RECOMPUTE for t in sorted(self.recomputed)},
            dram_order={b: tuple(o) for b, o in buses.items()},
            release_cycles=dict(self.start_cycles),
        )
