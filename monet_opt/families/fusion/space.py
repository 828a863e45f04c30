"""The fusion space: candidate stacks of a graph on an accelerator, each placed and priced once.

A candidate is a connected, convex set of at most `max_stack` ops (in the graph's order) that the
cost model can run as one fused stack. Enumeration (`connected_sets`) is Wernicke's ESU
algorithm on the undirected op graph: every connected set is produced exactly once. Convexity (no
path that leaves the set and comes back) is what keeps a single stack schedulable; the acyclicity of
a whole partition is the partition model's constraint (formulations/fusion.md).

Placement (`place`): each op of a stack runs on a core the stack already uses that can run it, else
on the eligible core that runs the op alone fastest (ties: the accelerator's core order). On
machines whose PE arrays run only MAC ops this is what lets a convolution and the ReLU after it
form one stack (PE array -> vector unit over their link).

Pruning: a candidate whose objective is not below the sum of its ops' own (unfused) objectives is
dominated: replacing it with its single ops keeps every partition valid and costs no more, so
dropping it keeps the optimum exact (for EDP: dominated when neither latency nor energy is lower).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from monet_opt.errors import InfeasibleError
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.workload.ir import Graph, Phase
from monet_opt.schedule.plan import Plan, Residency, serial_sequence, stack_name
from monet_opt.solving.common import Deadline


class FusionObjective(StrEnum):
    LATENCY = "latency"  # cycles of the serial step: the sum of the stacks' latencies
    ENERGY = "energy"  # pJ
    DRAM = "dram"  # DRAM bytes read and written
    EDP = "edp"  # energy-delay product: latency cycles x energy pJ


UNITS = {FusionObjective.LATENCY: "cycles", FusionObjective.ENERGY: "pJ", FusionObjective.DRAM: "bytes",
         FusionObjective.EDP: "cycles x pJ"}


@dataclass(frozen=True)
class Candidate:
    """A stack the partition may choose: its ops (graph order), the core of each, and its price."""

    ops: tuple[str, ...]
    cores: tuple[str, ...]
    latency_cycles: int
    energy_pj: float
    dram_bytes: int
    tiles: int

    @property
    def name(self) -> str:
        return stack_name(self.ops)


@dataclass(frozen=True)
class CandidateCounts:
    """How many stacks of 2+ ops each step leaves (the formulation's scaling table)."""

    connected: int
    convex: int
    feasible: int
    kept: int


@dataclass(frozen=True)
class FusionSpace:
    graph: Graph
    table: CostTable
    max_stack: int
    objective: FusionObjective
    singles: Mapping[str, Candidate]  # op -> the op alone (layer by layer)
    stacks: tuple[Candidate, ...]  # candidates of 2+ ops that survive the pruning
    counts: CandidateCounts | None  # None: stacks not enumerated (methods that build their own)
    complete: bool  # False: the deadline stopped the enumeration (the space is a subset)
    residency: Mapping[str, Residency] = field(default_factory=dict)  # checkpoint decisions priced in
    alone: frozenset[str] = frozenset()  # ops no stack may hold (peak splitting, families/fusion_checkpoint/joint.py)
    start: tuple[tuple[str, ...], ...] = ()  # a partition (op blocks) the searches start from, if any

    @property
    def candidates(self) -> tuple[Candidate, ...]:
        return tuple(self.singles.values()) + self.stacks

    def keeping_alone(self, ops: Iterable[str], start: Sequence[Candidate]) -> FusionSpace:
        """This space with `ops` also kept out of every stack of 2+ ops, its searches starting
        from `start` with those ops taken out of their stacks."""
        alone = self.alone | frozenset(ops)
        blocks = [b for c in start for b in ([c.ops] if not alone & set(c.ops) else [(op,) for op in c.ops])]
        return replace(self, stacks=tuple(c for c in self.stacks if not alone & set(c.ops)), alone=alone,
                       start=tuple(blocks))

    def value(self, candidates: Sequence[Candidate]) -> float:
        """The objective of a partition (of its chosen candidates)."""
        return objective_value(self.objective, sum(c.latency_cycles for c in candidates),
                               sum(c.energy_pj for c in candidates), sum(c.dram_bytes for c in candidates))


def objective_value(objective: FusionObjective, latency_cycles: int, energy_pj: float, dram_bytes: int) -> float:
    return {FusionObjective.LATENCY: latency_cycles, FusionObjective.ENERGY: energy_pj,
            FusionObjective.DRAM: dram_bytes, FusionObjective.EDP: latency_cycles * energy_pj}[objective]


def connected_sets(graph: Graph, max_size: int, deadline: Deadline | None = None) -> Iterator[tuple[str, ...]]:
    """Every connected set of 2..max_size ops of the undirected op graph, once each (ESU), as
    op names in graph order. Stops early (silently) at the deadline."""
    names = [op.name for op in graph.ops]
    index = {name: i for i, name in enumerate(names)}
    dag = graph.dag
    neighbours = [sorted({index[u] for u in dag.predecessors(n)} | {index[u] for u in dag.successors(n)})
                  for n in names]

    def extend(members: list[int], closed: set[int], extension: list[int], root: int) -> Iterator[tuple[str, ...]]:
        if len(members) > 1:
            yield tuple(names[i] for i in sorted(members))
        if len(members) == max_size:
            return
        extension = list(extension)
        while extension:
            if deadline is not None and deadline.expired():
                return
            w = extension.pop()
            fresh = [u for u in neighbours[w] if u > root and u not in closed]
            yield from extend(members + [w], closed | set(fresh), extension + fresh, root)

    for root in range(len(names)):
        start = [u for u in neighbours[root] if u > root]
        yield from extend([root], {root, *neighbours[root]}, start, root)


def is_convex(graph: Graph, ops: Sequence[str], position: Mapping[str, int]) -> bool:
    """No path leaves `ops` and comes back (a path from a member through an outside op to a member)."""
    members = set(ops)
    last = max(position[o] for o in ops)
    dag = graph.dag
    stack = [w for o in ops for w in dag.successors(o) if w not in members and position[w] < last]
    seen = set(stack)
    while stack:
        v = stack.pop()
        for w in dag.successors(v):
            if w in members:
                return False
            if w not in seen and position[w] < last:
                seen.add(w)
                stack.append(w)
    return True


def place(table: CostTable, ops: Sequence[str]) -> tuple[str, ...] | None:
    """The placement rule (module docstring); None when an op runs on no core."""
    used: list[str] = []
    cores = []
    for op in ops:
        eligible = table.eligible_cores((op,))
        if not eligible:
            return None
        core = next((c for c in used if c in eligible), None)
        if core is None:
            core = min(eligible, key=lambda c: table.get((op,), c).latency_cycles)  # type: ignore[union-attr]
            used.append(core)
        cores.append(core)
    return tuple(cores)


def kept_off_dram(graph: Graph, ops: Sequence[str], residency: Mapping[str, Residency]) -> frozenset[str]:
    """The saved activations that a stack of `ops` never moves through DRAM under `residency`:
    its operands kept ON_CHIP, and the values it produces, passes to all their forward readers
    inside, and lets be recomputed for the backward pass."""
    members = set(ops)
    out = set()
    for op in ops:
        o = graph.op_by_name[op]
        out |= {t for t in o.inputs + o.outputs if residency.get(t) is Residency.ON_CHIP}
        for t in o.outputs:
            readers = [c for c in graph.consumers[t] if graph.op_by_name[c].phase is Phase.FORWARD]
            if residency.get(t) is Residency.RECOMPUTE and len(ops) > 1 and readers and set(readers) <= members:
                out.add(t)
    return frozenset(out)


def priced(table: CostTable, ops: tuple[str, ...], residency: Mapping[str, Residency] | None = None
           ) -> Candidate | None:
    """The candidate of `ops` under the placement rule (priced with the saved activations that
    `residency` keeps off DRAM), or None when it cannot run fused."""
    cores = place(table, ops)
    if cores is None:
        return None
    cost = table.get(ops, cores, kept_off_dram(table.graph, ops, residency) if residency else frozenset())
    if not isinstance(cost, Cost):
        return None
    return Candidate(ops, cores, cost.latency_cycles, cost.energy_pj, cost.dram_bytes, cost.tiles)


def _dominated(objective: FusionObjective, stack: Candidate, parts: Sequence[Candidate]) -> bool:
    latency = sum(p.latency_cycles for p in parts)
    energy = sum(p.energy_pj for p in parts)
    if objective is FusionObjective.EDP:
        return stack.latency_cycles >= latency and stack.energy_pj >= energy
    value = objective_value(objective, stack.latency_cycles, stack.energy_pj, stack.dram_bytes)
    return value >= objective_value(objective, latency, energy, sum(p.dram_bytes for p in parts))


def fusion_space(graph: Graph, table: CostTable, max_stack: int, objective: FusionObjective,
                 deadline: Deadline | None = None, residency: Mapping[str, Residency] | None = None,
                 enumerate_stacks: bool = True, prune: bool = True) -> FusionSpace:
    """Enumerate, place, price and prune the candidates (module docstring), each priced with the
    checkpoint decisions `residency` (default: every saved activation in DRAM); without
    `enumerate_stacks`, only the single ops (the rule, layer by layer and the GA price the stacks
    they build); without `prune`, every feasible candidate (dominance holds for one residency only:
    the joint search with checkpointing keeps them all). InfeasibleError when an op runs on no core."""
    residency = dict(residency or {})
    singles = {}
    for op in graph.ops:
        single = priced(table, (op.name,), residency)
        if single is None:
            raise InfeasibleError(f"op {op.name!r} ({op.kind.value}) can run on no core of {table.hw.name!r}")
        singles[op.name] = single
    if not enumerate_stacks:
        return FusionSpace(graph, table, max_stack, objective, singles, (), None, True, residency)
    position = {op.name: i for i, op in enumerate(graph.ops)}
    connected = convex = feasible = 0
    kept = []
    for ops in connected_sets(graph, max_stack, deadline):
        connected += 1
        if not is_convex(graph, ops, position):
            continue
        convex += 1
        stack = priced(table, ops, residency)
        if stack is None:
            continue
        feasible += 1
        if not prune or not _dominated(objective, stack, [singles[o] for o in ops]):
            kept.append(stack)
    complete = deadline is None or not deadline.expired()
    return FusionSpace(graph, table, max_stack, objective, singles, tuple(kept),
                       CandidateCounts(connected, convex, feasible, len(kept)), complete, residency)


def plan_of(graph: Graph, partition: Sequence[Candidate]) -> Plan:
    """The serial plan of a partition: one stack per candidate, on its first op's core, with the
    other ops placed on theirs; every core lists its stacks in the serial order."""
    by_name = {c.name: c for c in partition}
    stacks = {c.name: c.ops for c in partition}
    order: dict[str, list[str]] = {}
    for name in serial_sequence(graph, stacks):
        for core in dict.fromkeys(by_name[name].cores):
            order.setdefault(core, []).append(name)
    return Plan(stacks, {c.name: c.cores[0] for c in partition}, {core: tuple(names) for core, names in order.items()},
                serial=True,
                placement={op: core for c in partition for op, core in zip(c.ops, c.cores, strict=True)
                           if core != c.cores[0]})
