"""The allocation problem: which core runs each task, in which order (formulations/allocation.md).

One representation serves both sources:
- a training graph on an accelerator (`from_training`): a task per op, an option per eligible core
  priced by the cost model (duration = latency, energy, and the cycles the task holds the core's
  DRAM link); values live in DRAM, so a consumer reads its input from DRAM whatever the cores (that
  traffic is in the prices) and edges carry no extra delay;
- a small abstract instance in YAML (`load_instance`): tasks with a duration and energy per
  eligible core, edges with transfer bytes, one link bandwidth: a transfer between different cores
  delays the consumer by ceil(bytes / bandwidth) cycles (links are not a shared resource).

`evaluate` is the abstract instances' referee: the earliest schedule for an assignment and
per-core orders (and per-link DRAM orders), computed independently of every solver.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.io import check_keys, load_data
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.hardware.model import DRAM, Accelerator
from monet_opt.model.workload.ir import Graph
from monet_opt.solving.common import LARGEST_VALUE


@dataclass(frozen=True)
class Option:
    """Running a task on one core (and, for a fused stack that spans cores, on `also_cores` too:
    the task occupies every one of them for its whole duration)."""

    duration_cycles: int
    energy_pj: float
    bus: str | None = None  # the DRAM link the task holds from its start ...
    bus_cycles: int = 0  # ... for this many cycles
    also_cores: tuple[str, ...] = ()

    def cores(self, core: str) -> tuple[str, ...]:
        """Every core the task occupies when `core` runs it."""
        return (core, *self.also_cores)


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    size_bytes: int


@dataclass(frozen=True)
class AllocationProblem:
    """Tasks in a topological reference order; `options[t]`: core -> Option for each eligible core;
    `transfer_bits_per_cycle`: bandwidth between different cores (None: no delay, values live in
    DRAM); `core_classes`: groups of interchangeable cores (same options for every task), for
    symmetry breaking."""

    name: str
    tasks: tuple[str, ...]
    cores: tuple[str, ...]
    options: tuple[Mapping[str, Option], ...]
    edges: tuple[Edge, ...]
    transfer_bits_per_cycle: int | None = None
    transfer_energy_pj_per_bit: float = 0.0
    core_classes: tuple[tuple[str, ...], ...] = ()

    @property
    def n(self) -> int:
        return len(self.tasks)

    def occupied(self, t: int, core: str) -> tuple[str, ...]:
        """The cores task t occupies when `core` runs it."""
        return self.options[t][core].cores(core)

    def delay_cycles(self, edge: Edge, source_core: str, target_core: str) -> int:
        if source_core == target_core or self.transfer_bits_per_cycle is None:
            return 0
        return math.ceil(edge.size_bytes * 8 / self.transfer_bits_per_cycle)

    def transfer_energy_pj(self, edge: Edge, source_core: str, target_core: str) -> float:
        if source_core == target_core or self.transfer_bits_per_cycle is None:
            return 0.0
        return edge.size_bytes * 8 * self.transfer_energy_pj_per_bit

    def preds(self) -> list[list[Edge]]:
        out: list[list[Edge]] = [[] for _ in self.tasks]
        for e in self.edges:
            out[e.target].append(e)
        return out


def _classes(cores: Sequence[str], options: Sequence[Mapping[str, Option]]) -> tuple[tuple[str, ...], ...]:
    """Cores with identical options for every task (and the same DRAM link) are interchangeable."""
    signature: dict[tuple, list[str]] = {}
    for c in cores:
        key = tuple((o.get(c) is None, o[c] if c in o else None) for o in options)
        signature.setdefault(key, []).append(c)
    return tuple(tuple(group) for group in signature.values() if len(group) > 1)


def from_training(graph: Graph, hw: Accelerator, table: CostTable | None = None) -> AllocationProblem:
    """A task per op of `graph`, priced on every core that can run it (see the module docstring).
    InfeasibleError naming the op when no core can."""
    table = table or CostTable(graph, hw)
    index = {op.name: k for k, op in enumerate(graph.ops)}
    options = []
    for op in graph.ops:
        choices = {}
        reasons = []
        for core in hw.cores:
            cost = table.get((op.name,), core.name)
            if isinstance(cost, Cost):
                bus = hw.link_between(DRAM, core.name).name if cost.dram_cycles else None
                choices[core.name] = Option(cost.latency_cycles, cost.energy_pj, bus, cost.dram_cycles)
            else:
                reasons.append(cost.reason)
        if not choices:
            raise InfeasibleError(f"op {op.name!r} ({op.kind.value}) can run on no core of {hw.name!r}: {reasons[0]}")
        options.append(choices)
    edges = []
    for op in graph.ops:
        for t in dict.fromkeys(op.inputs):
            producer = graph.producer.get(t)
            if producer is not None:
                edges.append(Edge(index[producer], index[op.name], graph.tensors[t].size_bytes))
    cores = tuple(c.name for c in hw.cores)
    return AllocationProblem(f"{graph.name}@{hw.name}", tuple(op.name for op in graph.ops), cores, tuple(options),
                             tuple(edges), core_classes=_classes(cores, options))


def interchangeable(hw: Accelerator, core: str) -> tuple[str, ...]:
    """The cores identical to `core` (same op kinds, array or vector unit, memory size, bandwidth
    and energies, same DRAM link), `core` included, in the accelerator's order."""
    def signature(name: str) -> tuple:
        c = hw.core(name)
        memory = hw.memories[c.memory]
        return (c.op_kinds, tuple(sorted(c.unroll.items())), c.mac_energy, c.vector_lanes, c.vector_op_energy,
                tuple(sorted(c.registers.items())), c.double_buffered,
                memory.capacity_bytes, memory.bandwidth_bits_per_cycle, memory.read_bandwidth_bits_per_cycle,
                memory.write_bandwidth_bits_per_cycle, memory.read_energy_pj_per_bit,
                memory.write_energy_pj_per_bit, hw.link_between(DRAM, name).name)
    return tuple(c.name for c in hw.cores if signature(c.name) == signature(core))


@dataclass(frozen=True)
class FusedStack:
    """A fused stack as an allocation task: its ops, the core of each op as placed, and the core
    the allocation may move (the one with the most interchangeable cores; the others stay)."""

    name: str
    ops: tuple[str, ...]
    cores: tuple[str, ...]
    movable: str

    def on(self, core: str) -> tuple[str, ...]:
        """The per-op cores with the movable core replaced by `core`."""
        return tuple(core if c == self.movable else c for c in self.cores)


def fused_stacks(hw: Accelerator, stacks: Sequence[tuple[str, tuple[str, ...], tuple[str, ...]]]) -> tuple[FusedStack, ...]:
    """(name, ops, per-op cores) -> FusedStack, choosing each stack's movable core."""
    out = []
    for name, ops, cores in stacks:
        distinct = list(dict.fromkeys(cores))
        movable = max(distinct, key=lambda c: (len(interchangeable(hw, c)), -distinct.index(c)))
        out.append(FusedStack(name, ops, cores, movable))
    return tuple(out)


def from_fused(graph: Graph, hw: Accelerator, table: CostTable, stacks: Sequence[FusedStack]) -> AllocationProblem:
    """A task per fused stack (tasks in the order given, which must be topological), an option per
    core interchangeable with its movable core that keeps the stack runnable (its cores linked),
    occupying the stack's other cores too; values live in DRAM (no edge delays), as in
    `from_training`."""
    options = []
    for stack in stacks:
        others = set(stack.cores) - {stack.movable}
        choices = {}
        for core in interchangeable(hw, stack.movable):
            if core in others:
                continue
            placed = stack.on(core)
            cost = table.get(stack.ops, placed)
            if not isinstance(cost, Cost):
                continue
            buses = {hw.link_between(DRAM, c).name for c in placed}
            if len(buses) > 1:
                raise InputError(f"allocation: stack {stack.name!r} spans cores on different DRAM links "
                                 f"({', '.join(sorted(buses))}), which the allocation model does not support")
            choices[core] = Option(cost.latency_cycles, cost.energy_pj, buses.pop() if cost.dram_cycles else None,
                                   cost.dram_cycles, tuple(c for c in dict.fromkeys(placed) if c != core))
        if not choices:
            raise InfeasibleError(f"stack {stack.name!r} can run on no core of {hw.name!r}")
        options.append(choices)
    index = {op: k for k, stack in enumerate(stacks) for op in stack.ops}
    edges = {}
    for k, stack in enumerate(stacks):
        for op in stack.ops:
            for t in graph.op_by_name[op].inputs:
                producer = graph.producer.get(t)
                if producer is not None and index[producer] != k:
                    edges[index[producer], k, t] = Edge(index[producer], k, graph.tensors[t].size_bytes)
    if any(e.source > e.target for e in edges.values()):
        raise InputError("allocation: fused stacks are not in a topological order")
    cores = tuple(c.name for c in hw.cores)
    return AllocationProblem(f"{graph.name}@{hw.name} (fused)", tuple(s.name for s in stacks), cores, tuple(options),
                             tuple(edges.values()), core_classes=_classes(cores, options))


def _number(value: object, where: str, minimum: float = 0.0) -> float:
    """A number between `minimum` and LARGEST_VALUE; InputError naming `where` otherwise."""
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value) or value < minimum:
        raise InputError(f"{where}: expected a number >= {minimum:g}, got {value!r}")
    if value > LARGEST_VALUE:
        raise InputError(f"{where}: {value!r} is larger than {LARGEST_VALUE:g}")
    return value


def load_instance(path: str | Path) -> AllocationProblem:
    """Read an abstract instance (YAML):

        name: two-core example
        cores: [a, b]
        link: {bandwidth_bits_per_cycle: 64, energy_pj_per_bit: 0.5}   # between different cores
        tasks:
          - {name: t1, options: {a: {duration_cycles: 4, energy_pj: 2.0}, b: {duration_cycles: 6, energy_pj: 1.0}}}
          - {name: t2, options: {b: {duration_cycles: 3, energy_pj: 1.5}}}
        edges:
          - {from: t1, to: t2, bytes: 64}
    """
    source = str(path)
    data = load_data(path)
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping with cores, tasks and edges")
    for key in ("cores", "tasks"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise InputError(f"{source}: '{key}' must be a non-empty list")
    check_keys(data, ("name", "cores", "tasks", "edges", "link"), source)
    cores = tuple(str(c) for c in data["cores"])
    if len(set(cores)) != len(cores):
        raise InputError(f"{source}: cores: duplicate core name")
    names: list[str] = []
    options: list[dict[str, Option]] = []
    for i, task in enumerate(data["tasks"]):
        where = f"{source}: tasks[{i}]"
        if not isinstance(task, dict) or "name" not in task or not isinstance(task.get("options"), dict):
            raise InputError(f"{where}: needs 'name' and 'options' (core -> duration_cycles, energy_pj)")
        check_keys(task, ("name", "options"), where)
        name = str(task["name"])
        if name in names:
            raise InputError(f"{where}: duplicate task {name!r}")
        choices = {}
        for core, opt in task["options"].items():
            if str(core) not in cores:
                raise InputError(f"{where}.options: unknown core {core!r}")
            if not isinstance(opt, dict) or "duration_cycles" not in opt:
                raise InputError(f"{where}.options.{core}: needs duration_cycles")
            check_keys(opt, ("duration_cycles", "energy_pj"), f"{where}.options.{core}")
            duration = _number(opt["duration_cycles"], f"{where}.options.{core}.duration_cycles")
            if duration != int(duration):
                raise InputError(f"{where}.options.{core}.duration_cycles: must be an integer, got {duration!r}")
            energy = _number(opt.get("energy_pj", 0.0), f"{where}.options.{core}.energy_pj")
            choices[str(core)] = Option(int(duration), float(energy))
        if not choices:
            raise InfeasibleError(f"{source}: task {name!r} can run on no core (its options are empty)")
        names.append(name)
        options.append(choices)
    index = {n: i for i, n in enumerate(names)}
    edges = []
    for i, edge in enumerate(data.get("edges") or []):
        where = f"{source}: edges[{i}]"
        if not isinstance(edge, dict) or edge.get("from") not in index or edge.get("to") not in index:
            raise InputError(f"{where}: 'from' and 'to' must name tasks")
        check_keys(edge, ("from", "to", "bytes"), where)
        size = _number(edge.get("bytes", 0), f"{where}.bytes")
        edges.append(Edge(index[edge["from"]], index[edge["to"]], int(size)))
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(names)))
    dag.add_edges_from((e.source, e.target) for e in edges)
    if not nx.is_directed_acyclic_graph(dag):
        cycle = nx.find_cycle(dag)
        raise InputError(f"{source}: edges form a cycle: {' -> '.join(names[u] for u, _ in cycle)}")
    order = list(nx.lexicographical_topological_sort(dag))
    position = {t: k for k, t in enumerate(order)}
    link = data.get("link") or {}
    if not isinstance(link, dict):
        raise InputError(f"{source}: link must be a mapping (bandwidth_bits_per_cycle, energy_pj_per_bit)")
    check_keys(link, ("bandwidth_bits_per_cycle", "energy_pj_per_bit"), f"{source}: link")
    bandwidth = link.get("bandwidth_bits_per_cycle")
    if bandwidth is not None:
        bandwidth = int(_number(bandwidth, f"{source}: link.bandwidth_bits_per_cycle", 1))
    elif any(e.size_bytes for e in edges):
        raise InputError(f"{source}: edges carry bytes but there is no link.bandwidth_bits_per_cycle "
                         "(transfers between cores would be free); give the link, or bytes: 0")
    ordered_options = tuple(options[t] for t in order)
    return AllocationProblem(
        name=str(data.get("name", Path(path).stem)),
        tasks=tuple(names[t] for t in order),
        cores=cores,
        options=ordered_options,
        edges=tuple(Edge(position[e.source], position[e.target], e.size_bytes) for e in edges),
        transfer_bits_per_cycle=bandwidth,
        transfer_energy_pj_per_bit=float(_number(link.get("energy_pj_per_bit", 0.0), f"{source}: link.energy_pj_per_bit")),
        core_classes=_classes(cores, ordered_options),
    )


@dataclass(frozen=True)
class Schedule:
    """An allocation: core per task, start cycles, and what it achieves."""

    assignment: tuple[str, ...]
    start_cycles: tuple[int, ...]
    makespan_cycles: int
    energy_pj: float

    def core_orders(self, problem: AllocationProblem) -> dict[str, tuple[int, ...]]:
        orders: dict[str, list[int]] = {c: [] for c in problem.cores}
        for t in sorted(range(problem.n), key=lambda t: (self.start_cycles[t], t)):
            for c in problem.occupied(t, self.assignment[t]):
                orders[c].append(t)
        return {c: tuple(o) for c, o in orders.items()}

    def bus_orders(self, problem: AllocationProblem) -> dict[str, tuple[int, ...]]:
        orders: dict[str, list[int]] = {}
        for t in sorted(range(problem.n), key=lambda t: (self.start_cycles[t], t)):
            option = problem.options[t][self.assignment[t]]
            if option.bus is not None and option.bus_cycles:
                orders.setdefault(option.bus, []).append(t)
        return {b: tuple(o) for b, o in orders.items()}


def evaluate(problem: AllocationProblem, assignment: Sequence[str], core_orders: Mapping[str, Sequence[int]],
             bus_orders: Mapping[str, Sequence[int]] | None = None) -> Schedule:
    """The earliest schedule with these cores and orders: a task starts when its core has finished
    the previous task of its order, every input has arrived (producer end + transfer delay) and,
    if it holds a DRAM link, the previous holder in that link's order has released it (without
    `bus_orders`, each link serves its holders in the reference order).
    Energy = sum of option energies + transfer energies. InputError if the orders are not a
    permutation of the tasks on each core, or contradict the precedences (a cycle)."""
    n = problem.n
    if len(assignment) != n or any(assignment[t] not in problem.options[t] for t in range(n)):
        bad = next((t for t in range(n) if t >= len(assignment) or assignment[t] not in problem.options[t]), 0)
        raise InputError(f"allocation: task {problem.tasks[bad]!r} is not assigned to one of its eligible cores")
    for core in problem.cores:
        listed = sorted(core_orders.get(core, ()))
        if listed != [t for t in range(n) if core in problem.occupied(t, assignment[t])]:
            raise InputError(f"allocation: the order of core {core!r} does not list exactly its tasks")
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    weight: dict[tuple[int, int], int] = {}

    def need(u: int, v: int, lag: int) -> None:
        dag.add_edge(u, v)
        weight[u, v] = max(weight.get((u, v), 0), lag)

    for e in problem.edges:
        duration = problem.options[e.source][assignment[e.source]].duration_cycles
        need(e.source, e.target, duration + problem.delay_cycles(e, assignment[e.source], assignment[e.target]))
    for order in core_orders.values():
        for u, v in zip(order, order[1:], strict=False):
            need(u, v, problem.options[u][assignment[u]].duration_cycles)
    if bus_orders is None:
        bus_orders = {}
        for t in range(n):
            option = problem.options[t][assignment[t]]
            if option.bus is not None and option.bus_cycles:
                bus_orders.setdefault(option.bus, []).append(t)
    for order in bus_orders.values():
        for u, v in zip(order, order[1:], strict=False):
            need(u, v, problem.options[u][assignment[u]].bus_cycles)
    if not nx.is_directed_acyclic_graph(dag):
        raise InputError("allocation: the orders contradict the task precedences (they deadlock)")
    start = [0] * n
    for v in nx.topological_sort(dag):
        start[v] = max((start[u] + weight[u, v] for u in dag.predecessors(v)), default=0)
    makespan = max((start[t] + problem.options[t][assignment[t]].duration_cycles for t in range(n)), default=0)
    energy = sum(problem.options[t][assignment[t]].energy_pj for t in range(n))
    energy += sum(problem.transfer_energy_pj(e, assignment[e.source], assignment[e.target]) for e in problem.edges)
    return Schedule(tuple(assignment), tuple(start), makespan, energy)
