"""The validation scheduler: an event-driven simulation of a plan on an accelerator.

It is independent of every solver and is the referee of their claims. Rules:

- Recomputation: a saved activation with Residency.RECOMPUTE is freed after its forward readers;
  its producer op is executed again (phase "recompute") on the core that ran it, inserted in that
  core's order before its first stack that comes at or after the value's first backward reader in
  the reference order; the backward readers read the copy. An activation input of a
  recomputed op that is not itself kept (not saved, or also recomputed) is recomputed first, in
  turn. A recompute op starts after the op it repeats has ended. An op needed by several
  recomputations runs once, before the earliest of their anchors; the recompute ops anchored before
  the same op run in forward order. A recompute op that the plan lists in a core's order runs there
  instead (on that core, at that place). Inputs and kept values simply stay live longer.
  `Plan.recompute_groups` fuse several recompute ops into one stack,
  placed where the last of them would run and priced by the cost model as the fused stack it is
  (values passed inside it never go to DRAM).
- `Plan.serial`: stacks run one at a time in the order of `serial_sequence` (for unfused plans:
  the order of the extended graph), and every core's order, recomputations included, follows it;
  transfers for a stack start after the previous stack has ended.
- `Plan.dram_order`: on a DRAM link with a fixed order, a stack takes the link only when every
  stack before it in that order has taken it; a stack listed twice or missing deadlocks (`order`).
- Each core runs its stacks one at a time in its plan order. A stack starts when the core is free,
  every input has arrived, the DRAM link of the core is free, and its release cycle
  (`Plan.release_cycles`) has come. A stack whose ops run on several
  cores (`Plan.placement`) is listed in the order of each, starts when it heads all of them and
  holds all of them (and their DRAM links) until it ends. It lasts the cost model's
  `latency_cycles` and reserves that DRAM link for its `dram_cycles` from its start (the bus is
  *reserved*, not shared: concurrent DRAM streams from different cores serialise).
- Tensor homes: static tensors and network inputs live in DRAM; a value kept ON_CHIP lives in its
  producer core's memory and is copied over `link_between(producer core, reader core)` to a reader
  on a core with another memory (the link is reserved first come, first served, for
  ceil(bits / bandwidth) cycles); values internal to a fused stack never leave it; all others
  live in DRAM (their DRAM traffic is part of their producer's and readers' costs).
- Memory occupancy: DRAM holds every static byte for the whole run and each dynamic DRAM value
  from its producer's start to its last reader's end. A local memory holds each running stack's
  working set for the stack's duration, each ON_CHIP value from its producer's start to its last
  reader's end, and each copied value from its transfer's start to its last reader's end there.
  Intervals are half-open [start, end).
- Energy: the cost model's energy of every stack, plus per transfer the link's energy per bit and
  one read at the source and one write at the destination memory.

Violations (a plan with any is invalid): `capacity` (a memory holds more than its capacity, or a
fused stack does not fit), `dependency` (a stack is ordered before a stack it reads from on the
same core, or ops inside a stack are out of order, or stacks depend on each other),
`ineligible` (a stack on a core that cannot run one of its ops), `order` (the per-core orders do
not list every stack exactly once on its core, or they deadlock).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace

import networkx as nx

from monet_opt.errors import InputError
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.hardware.model import DRAM, Accelerator, Link
from monet_opt.model.workload.ir import Graph, Op, Phase, TensorRole
from monet_opt.schedule.plan import Plan, Residency, check_plan_input, recompute_group_name, serial_sequence


@dataclass(frozen=True)
class Violation:
    kind: str  # capacity | dependency | ineligible | order
    message: str


@dataclass(frozen=True)
class TaskRecord:
    name: str
    ops: tuple[str, ...]
    core: str
    phase: str
    start_cycle: int
    end_cycle: int
    dram_cycles: int
    dram_read_bytes: int
    dram_write_bytes: int
    energy_pj: float
    cores: tuple[str, ...] = ()  # every core of a stack that spans cores, `core` first (empty: `core` alone)


@dataclass(frozen=True)
class TransferRecord:
    what: str  # the tensor moved, or "dram traffic of <stack>"
    link: str
    start_cycle: int
    end_cycle: int
    size_bytes: int


@dataclass(frozen=True)
class SimulationResult:
    accelerator: str
    clock_hz: float
    latency_cycles: int
    energy_pj: float
    energy_breakdown_pj: Mapping[str, float]
    peak_memory_bytes: Mapping[str, int]
    capacity_bytes: Mapping[str, int]
    static_dram_bytes: int
    tasks: tuple[TaskRecord, ...]
    transfers: tuple[TransferRecord, ...]
    memory_curves: Mapping[str, tuple[tuple[int, int], ...]]  # memory -> (cycle, bytes from then on)
    violations: tuple[Violation, ...]
    limits_bytes: Mapping[str, int] = field(default_factory=dict)  # budgets below capacities (`simulate`)

    @property
    def valid(self) -> bool:
        return not self.violations

    def core_busy_shares(self) -> dict[str, float]:
        """core -> the cycles tasks occupy it over the latency (a task occupies every core of its
        `cores`); cores no task runs on are absent."""
        busy: dict[str, int] = {}
        for task in self.tasks:
            for core in task.cores or (task.core,):
                busy[core] = busy.get(core, 0) + task.end_cycle - task.start_cycle
        return {core: cycles / self.latency_cycles for core, cycles in busy.items()} if self.latency_cycles else {}


def insert_recomputation(graph: Graph, plan: Plan) -> tuple[Graph, Plan]:
    """The graph and plan with recompute ops for every RECOMPUTE value (see the module docstring):
    the ops (`_insert_recompute_ops`), then their places in the plan (`_recompute_plan`)."""
    recomputed = {t for t, r in plan.residency.items() if r is Residency.RECOMPUTE}
    placed = {s: c for c, o in plan.core_order.items() for s in o if s not in plan.stacks}  # recompute ops
    if not recomputed:
        if plan.recompute_groups:
            raise InputError(f"plan: recompute group {plan.recompute_groups[0]!r} names ops that are not recomputed")
        if placed:
            raise _unneeded(placed)
        return graph, plan
    inserted = _insert_recompute_ops(graph, recomputed)
    return inserted.graph, _recompute_plan(graph, plan, recomputed, inserted, placed)


def _unneeded(placed: Mapping[str, str]) -> InputError:
    name, core = next(iter(placed.items()))
    return InputError(f"plan: the order of core {core!r} lists {name!r}, which no recomputed value needs")


def recompute_graph(graph: Graph, recomputed: Collection[str]) -> Graph:
    """`graph` with the recompute ops that recomputing the saved activations `recomputed` needs (the
    rule of the module docstring): the ops and values a plan with these RECOMPUTE residencies runs
    and holds, wherever it places them."""
    return _insert_recompute_ops(graph, set(recomputed)).graph if recomputed else graph


@dataclass(frozen=True)
class _RecomputeOps:
    """The graph with its recompute ops, those ops by name, and the anchor op -> the recompute ops
    inserted before it (in the order of the forward ops they repeat)."""

    graph: Graph
    ops: dict[str, Op]
    before: dict[str, list[str]]


def _insert_recompute_ops(graph: Graph, recomputed: set[str]) -> _RecomputeOps:
    """A recompute op for every forward op a recomputed value needs (transitively, up to the values
    kept), each anchored at the first backward reader of the value that first needs it; backward
    readers of a recomputed value read its copy."""
    position = {op.name: i for i, op in enumerate(graph.ops)}
    kept = {t for t in graph.saved_for_backward if t not in recomputed}
    clones: dict[str, Op] = {}  # forward op -> its recompute op
    before: dict[str, list[str]] = defaultdict(list)  # anchor op -> recompute ops inserted before it
    renamed: dict[str, str] = {}
    by_forward: dict[str, str] = {}  # recompute op -> the forward op it repeats

    def ensure(op_name: str, anchor: str) -> None:
        if op_name in clones:
            return
        op = graph.op_by_name[op_name]
        inputs = []
        for t in op.inputs:
            tensor = graph.tensors[t]
            if tensor.role is TensorRole.ACTIVATION and t not in kept:
                ensure(graph.producer[t], anchor)
                inputs.append(renamed[t])
            else:
                inputs.append(t)
        for t in op.outputs:
            renamed[t] = f"{t}@recompute"
        clones[op_name] = replace(
            op, name=f"{op_name}.recompute", phase=Phase.RECOMPUTE, inputs=tuple(inputs),
            outputs=tuple(renamed[t] for t in op.outputs), forward_op=op_name,
        )
        before[anchor].append(clones[op_name].name)
        by_forward[clones[op_name].name] = op_name

    def first_reader(t: str) -> str:
        return min(graph.saved_for_backward[t], key=position.__getitem__)

    for t in sorted(recomputed, key=lambda t: (position[first_reader(t)], t)):
        ensure(graph.producer[t], first_reader(t))
    for names in before.values():
        names.sort(key=lambda name: position[by_forward[name]])
    tensors = dict(graph.tensors)
    for t, copy in renamed.items():
        tensors[copy] = replace(graph.tensors[t], name=copy)
    by_name = {c.name: c for c in clones.values()}
    ops: list[Op] = []
    for op in graph.ops:
        ops.extend(by_name[name] for name in before.get(op.name, ()))
        if op.phase is Phase.BACKWARD and any(t in recomputed for t in op.inputs):
            op = replace(op, inputs=tuple(renamed[t] if t in recomputed else t for t in op.inputs))
        ops.append(op)
    saved = {t: readers for t, readers in graph.saved_for_backward.items() if t not in recomputed}
    new_graph = Graph(graph.name, tensors, tuple(ops), graph.inputs, graph.outputs, saved, graph.accumulator)
    return _RecomputeOps(new_graph, by_name, dict(before))


def _recompute_plan(graph: Graph, plan: Plan, recomputed: set[str], inserted: _RecomputeOps,
                    placed: Mapping[str, str]) -> Plan:
    """The plan with each recompute op on the core its forward op ran on, just before its anchor
    in that core's order (fused as the plan's recompute groups say), in the serial order when the
    plan is serial."""
    stack_of = {op: s for s, ops in plan.stacks.items() for op in ops}
    position = {op.name: i for i, op in enumerate(graph.ops)}
    before, by_name, new_graph = inserted.before, inserted.ops, inserted.graph
    listed = dict(placed)  # recompute ops the plan places, left to find
    stacks = dict(plan.stacks)
    core_of = dict(plan.core_of)
    order = {c: list(o) for c, o in plan.core_order.items()}
    # Sort key of every stack: its last op's reference position (the serial order's key); a
    # recompute op gets a key just below its anchor op, increasing in insertion (= dependency) order.
    key: dict[str, float] = {s: max(position[o] for o in ops) for s, ops in plan.stacks.items()}
    sequence = 0
    for anchor in sorted(before, key=position.__getitem__):
        for name in before[anchor]:
            sequence += 1
            key[name] = position[anchor] - 0.5 + sequence / (2 * (len(by_name) + 1))
            stacks[name] = (name,)
            if name in listed:  # placed by the plan
                core_of[name] = listed.pop(name)
                continue
            original = by_name[name].forward_op
            core = plan.placement.get(original, core_of[stack_of[original]])  # where the original ran: eligible
            target = order.setdefault(core, [])
            at = next((i for i, s in enumerate(target) if key[s] > key[name]), len(target))
            target.insert(at, name)
            core_of[name] = core
    if listed:
        raise _unneeded(listed)
    for group in plan.recompute_groups:
        members = [f"{op}.recompute" for op in group]
        missing = [op for op, name in zip(group, members, strict=True) if name not in stacks]
        if missing:
            raise InputError(f"plan: recompute group {group!r} names {missing[0]!r}, which is not recomputed")
        cores = {core_of[name] for name in members}
        if len(cores) > 1:
            raise InputError(f"plan: recompute group {group!r} spans cores {sorted(cores)}; a fused stack runs on one")
        core = cores.pop()
        target = order[core]
        at = max(target.index(name) for name in members) - (len(members) - 1)
        fused = recompute_group_name(group)
        for name in members:
            target.remove(name)
            del stacks[name], core_of[name]
        target.insert(at, fused)
        stacks[fused] = tuple(members)
        core_of[fused] = core
    if plan.serial:
        # each core's order follows the serial order: a recomputation anchored at a stack whose last
        # op comes late must run before the stacks that wait for that stack, whatever their keys
        rank = {name: k for k, name in enumerate(serial_sequence(new_graph, stacks))}
        order = {c: sorted(o, key=rank.__getitem__) for c, o in order.items()}
    residency = {t: r for t, r in plan.residency.items() if t not in recomputed}
    return Plan(stacks, core_of, {c: tuple(o) for c, o in order.items()}, residency, serial=plan.serial,
                dram_order=plan.dram_order, placement=plan.placement, release_cycles=plan.release_cycles,
                split=plan.split)


def _stack_cost(table: CostTable, ops: tuple[str, ...], core: str | tuple[str, ...], on_chip: frozenset[str]
                ) -> tuple[Cost | None, str]:
    """The stack's price, or (for a fused stack that does not fit, or whose cores have no link) its
    ops run back to back unfused on their cores; None when a core cannot run its op. The second
    value is the reason for a violation ('' if none)."""
    found = table.get(ops, core, on_chip)
    if isinstance(found, Cost):
        return found, ""
    cores = (core,) * len(ops) if isinstance(core, str) else core
    if len(ops) == 1 or not all(isinstance(table.get((o,), c), Cost) for o, c in zip(ops, cores, strict=True)):
        return None, found.reason
    parts = [table.get((o,), c, on_chip) for o, c in zip(ops, cores, strict=True)]
    total = parts[0]
    for p in parts[1:]:
        total = replace(
            total,
            **{f: getattr(total, f) + getattr(p, f) for f in (
                "compute_cycles", "fill_drain_cycles", "local_cycles", "dram_cycles", "latency_cycles",
                "local_read_bits", "local_write_bits", "dram_read_bytes", "dram_write_bytes", "compute_energy_pj",
                "register_energy_pj", "local_energy_pj", "dram_energy_pj", "dram_link_energy_pj")},
            working_set_bytes=max(total.working_set_bytes, p.working_set_bytes),
        )
    return total, found.reason


@dataclass(frozen=True)
class _Structure:
    """What the plan's stacks read and where their values live, derived once."""

    stack_of: Mapping[str, str]  # op -> its stack
    core_of_op: Mapping[str, str]  # op -> the core that runs it
    stack_cores: Mapping[str, tuple[str, ...]]  # stack -> every core it runs on, its `core_of` first
    stack_inputs: Mapping[str, list[tuple[str, str]]]  # stack -> (tensor, producer stack) read from outside
    repeats: Mapping[str, tuple[str, ...]]  # stack -> the other stacks whose ops its recompute ops repeat
    on_chip_home: Mapping[str, str]  # tensor kept ON_CHIP -> core whose memory holds it
    internal: frozenset[str]  # values produced and read only inside one fused stack


@dataclass(frozen=True)
class _Copy:
    """An ON_CHIP value copied from its home memory to a reader's memory over a link."""

    tensor: str
    link: Link
    size_bytes: int
    source_memory: str
    memory: str  # where the copy goes


@dataclass(frozen=True)
class _Started:
    """One stack as the event loop ran it: its record, its price and the copies it waited for."""

    record: TaskRecord
    cost: Cost | None
    copies: tuple[_Copy, ...]


@dataclass(frozen=True)
class _Run:
    started: tuple[_Started, ...]  # in start order
    transfers: tuple[TransferRecord, ...]
    copy_start: Mapping[tuple[str, str], int]  # (tensor, memory) -> when its copy there began


def simulate(graph: Graph, hw: Accelerator, plan: Plan, table: CostTable | None = None,
             limits_bytes: Mapping[str, int] | None = None) -> SimulationResult:
    """Simulate `plan` for `graph` on `hw`; see the module docstring for the rules. `limits_bytes`:
    budgets of memories below their capacities: ops are priced to fit them and a memory above its
    budget is a capacity violation."""
    limits = dict(limits_bytes or {})
    check_plan_input(graph, plan, {c.name for c in hw.cores})
    graph, plan = insert_recomputation(graph, plan)
    if table is None or table.graph is not graph or table.limits_bytes != limits:
        table = CostTable(graph, hw, limits)
    violations: list[Violation] = []
    structure = _structure(graph, plan, violations)
    run = _event_loop(graph, hw, plan, table, structure, violations)
    energy = _energy_breakdown(hw, run)
    curves, peaks, capacity, static_dram = _memory_occupancy(graph, hw, plan, structure, run, limits, violations)
    tasks = tuple(s.record for s in run.started)
    return SimulationResult(
        accelerator=hw.name,
        clock_hz=hw.clock_hz,
        latency_cycles=max([t.end_cycle for t in tasks] + [x.end_cycle for x in run.transfers] + [0]),
        energy_pj=sum(energy.values()),
        energy_breakdown_pj=dict(sorted(energy.items())),
        peak_memory_bytes=peaks,
        capacity_bytes=capacity,
        static_dram_bytes=static_dram,
        tasks=tasks,
        transfers=run.transfers,
        memory_curves=curves,
        violations=tuple(violations),
        limits_bytes=limits,
    )


def _structure(graph: Graph, plan: Plan, violations: list[Violation]) -> _Structure:
    """Static checks (order coverage, dependencies inside and between stacks, acyclic stacks) and
    where values live: ON_CHIP homes and values internal to fused stacks."""
    stack_of = {op: s for s, ops in plan.stacks.items() for op in ops}
    listed: dict[str, list[str]] = defaultdict(list)
    for core, order in plan.core_order.items():
        for s in order:
            listed[s].append(core)
    core_of_op = {op: core for s in plan.stacks for op, core in zip(plan.stacks[s], plan.op_cores(s), strict=True)}
    stack_cores = {s: plan.stack_cores(s) for s in plan.stacks}
    for s in plan.core_of:
        where, cores = listed.get(s, []), stack_cores[s]
        if sorted(where) != sorted(cores):
            violations.append(Violation("order", f"stack {s!r} runs on {', '.join(cores)} but is listed in the order "
                                                 f"of {where or 'no core'}"))
    stack_inputs: dict[str, list[tuple[str, str]]] = {}
    repeats: dict[str, tuple[str, ...]] = {}
    stack_graph = nx.DiGraph()
    stack_graph.add_nodes_from(plan.stacks)
    for s, ops in plan.stacks.items():
        members = set(ops)
        done: set[str] = set()
        deps: dict[str, str] = {}
        for op_name in ops:
            op = graph.op_by_name[op_name]
            for t in op.inputs:
                producer = graph.producer.get(t)
                if producer is None:
                    continue
                if producer in members:
                    if producer not in done:
                        violations.append(Violation("dependency", f"in stack {s!r}, op {op_name!r} runs before "
                                                                  f"{producer!r}, whose output {t!r} it reads"))
                else:
                    deps.setdefault(t, stack_of[producer])
                    stack_graph.add_edge(stack_of[producer], s)
            done.add(op_name)
        stack_inputs[s] = list(deps.items())
        repeated = {stack_of[op.forward_op] for op in map(graph.op_by_name.__getitem__, ops)
                    if op.phase is Phase.RECOMPUTE and op.forward_op in stack_of and stack_of[op.forward_op] != s}
        repeats[s] = tuple(sorted(repeated))
        stack_graph.add_edges_from((p, s) for p in repeated)
    for core, order in plan.core_order.items():
        position = {s: i for i, s in enumerate(order)}
        for s in order:
            for p in repeats.get(s, ()):
                if p in position and position[p] > position[s]:
                    violations.append(Violation("dependency", f"on core {core!r}, {s!r} is ordered before {p!r}, "
                                                              "whose op it recomputes"))
            for t, p in stack_inputs.get(s, ()):
                if p in position and position[p] > position[s]:
                    violations.append(Violation("dependency", f"on core {core!r}, {s!r} is ordered before {p!r}, "
                                                              f"whose output {t!r} it reads"))
    if not nx.is_directed_acyclic_graph(stack_graph):
        cycle = nx.find_cycle(stack_graph)
        violations.append(Violation("dependency", "stacks depend on each other (a fusion stack is not convex): "
                                    + " -> ".join(u for u, _ in cycle)))
    on_chip_home = {t: core_of_op[graph.producer[t]] for t, r in plan.residency.items() if r is Residency.ON_CHIP}
    internal: set[str] = set()
    for ops in plan.stacks.values():
        members = set(ops)
        for op_name in ops:
            for t in graph.op_by_name[op_name].outputs:
                readers = graph.consumers[t]
                if readers and all(r in members for r in readers) and t not in graph.outputs and len(ops) > 1:
                    internal.add(t)
    return _Structure(stack_of, core_of_op, stack_cores, stack_inputs, repeats, on_chip_home, frozenset(internal))


def _event_loop(graph: Graph, hw: Accelerator, plan: Plan, table: CostTable, structure: _Structure,
                violations: list[Violation]) -> _Run:
    """Run the stacks: repeatedly start the stack (at the head of the order of every core it runs
    on) that can start earliest, given its inputs, its ON_CHIP copies over links and its cores' DRAM
    links. One function, over 80 lines: it is the simulator's hot loop (benchmarks/simulate_step.py;
    every plan of every solver passes through it) and each event updates the same dozen pieces of
    state (ready times, link queues, memory occupancy)."""
    stack_of, stack_inputs, on_chip_home = structure.stack_of, structure.stack_inputs, structure.on_chip_home
    core_memory = {c.name: c.memory for c in hw.cores}
    dram_link = {c.name: hw.link_between(DRAM, c.name) for c in hw.cores}
    pending = {c.name: list(plan.core_order.get(c.name, ())) for c in hw.cores}
    head = {c: 0 for c in pending}
    core_free = {c: 0 for c in pending}
    link_free: dict[str, int] = defaultdict(int)
    end_of: dict[str, int] = {}
    arrival: dict[tuple[str, str], int] = {}  # (tensor, memory) -> when a copy is there
    copy_start: dict[tuple[str, str], int] = {}
    started: list[_Started] = []
    transfers: list[TransferRecord] = []
    costs: dict[str, Cost | None] = {}

    def stack_cost(s: str) -> Cost | None:
        if s not in costs:
            ops = plan.stacks[s]
            on_chip = frozenset(t for op in ops for t in graph.op_by_name[op].inputs + graph.op_by_name[op].outputs
                                if t in on_chip_home)
            priced_on = plan.split.get(s) or tuple(structure.core_of_op[op] for op in ops)
            cost, reason = _stack_cost(table, ops, priced_on, on_chip)
            if cost is None:
                violations.append(Violation("ineligible", reason))
            elif reason:
                violations.append(Violation("capacity", reason))
            costs[s] = cost
        return costs[s]

    def needed_copies(s: str) -> list[_Copy]:
        """ON_CHIP inputs that must be copied to the memory of an op of `s` that reads them."""
        out = []
        for t, _ in stack_inputs[s]:
            home = on_chip_home.get(t)
            if home is None:
                continue
            for op in plan.stacks[s]:
                core = structure.core_of_op[op]
                memory = core_memory[core]
                if (t in graph.op_by_name[op].inputs and core_memory[home] != memory and (t, memory) not in arrival
                        and all(c.tensor != t or c.memory != memory for c in out)):
                    out.append(_Copy(t, hw.link_between(home, core), graph.tensors[t].size_bytes, core_memory[home],
                                     memory))
        return out

    def copy_cycles(copy: _Copy) -> int:
        return math.ceil(copy.size_bytes * 8 / copy.link.bandwidth_bits_per_cycle)

    bus_head: dict[str, int] = defaultdict(int)
    release = plan.release_cycles

    def bus_turn(bus: str) -> str | None:
        """The stack whose turn it is on a DRAM link with a fixed order."""
        order = plan.dram_order[bus]
        return order[bus_head[bus]] if bus_head[bus] < len(order) else None

    cores_of = structure.stack_cores
    memories_of = {s: tuple(dict.fromkeys(core_memory[c] for c in cores)) for s, cores in cores_of.items()}
    buses_of = {s: list(dict.fromkeys(dram_link[c].name for c in cores)) for s, cores in cores_of.items()}

    remaining = len({s for order in pending.values() for s in order})
    sequence = serial_sequence(graph, plan.stacks) if plan.serial else []
    previous_end = 0
    while remaining:
        best: tuple[int, int, str] | None = None
        for index, core in enumerate(pending):
            if head[core] >= len(pending[core]):
                continue
            s = pending[core][head[core]]
            cores = cores_of[s]
            if core != cores[0] and cores[0] in pending:
                continue  # a stack on several cores is considered once, from its first core
            if len(cores) > 1 and any(head[c] >= len(pending[c]) or pending[c][head[c]] != s
                                      for c in cores if c in pending):
                continue
            if any(p not in end_of for _, p in stack_inputs[s]) or any(p not in end_of for p in structure.repeats[s]):
                continue
            if plan.serial and s != sequence[len(end_of)]:
                continue
            ready = max(core_free[core] if len(cores) == 1 else max(core_free[c] for c in cores), previous_end,
                        release.get(s, 0))
            for p in structure.repeats[s]:
                ready = max(ready, end_of[p])
            for t, p in stack_inputs[s]:
                ready = max(ready, end_of[p])
                if arrival:
                    ready = max(ready, *(arrival.get((t, m), 0) for m in memories_of[s]))
            tentative = defaultdict(int, link_free)
            for copy in needed_copies(s):
                begin = max(end_of[stack_of[graph.producer[copy.tensor]]], tentative[copy.link.name], previous_end)
                tentative[copy.link.name] = begin + copy_cycles(copy)
                ready = max(ready, tentative[copy.link.name])
            cost = stack_cost(s)
            if cost is not None and cost.dram_cycles:
                if any(bus in plan.dram_order and bus_turn(bus) != s for bus in buses_of[s]):
                    continue
                ready = max(ready, *(tentative[bus] for bus in buses_of[s]))
            if best is None or ready < best[0]:
                best = (ready, index, core)
        if best is None:
            waiting = [f"serial order expects {sequence[len(end_of)]!r} next"] if plan.serial else []
            waiting += [f"DRAM link {bus} expects {bus_turn(bus)!r}" for bus in plan.dram_order if bus_turn(bus)]
            for core in pending:
                if head[core] < len(pending[core]):
                    s = pending[core][head[core]]
                    blockers = sorted({p for _, p in stack_inputs[s] if p not in end_of}
                                      | {p for p in structure.repeats[s] if p not in end_of})
                    waiting.append(f"{core} waits at {s!r} for {', '.join(blockers[:2]) or 'its other cores'}")
            violations.append(Violation("order", "the per-core orders deadlock: " + "; ".join(waiting)))
            break
        start, _, core = best
        s = pending[core][head[core]]
        cores = cores_of[s]
        copies = needed_copies(s)
        for copy in copies:
            begin = max(end_of[stack_of[graph.producer[copy.tensor]]], link_free[copy.link.name], previous_end)
            finish = begin + copy_cycles(copy)
            link_free[copy.link.name] = finish
            arrival[(copy.tensor, copy.memory)] = finish
            copy_start[(copy.tensor, copy.memory)] = begin
            transfers.append(TransferRecord(copy.tensor, copy.link.name, begin, finish, copy.size_bytes))
        cost = stack_cost(s)
        end = start + (cost.latency_cycles if cost is not None else 0)
        if cost is not None and cost.dram_cycles:
            for bus in buses_of[s]:
                link_free[bus] = start + cost.dram_cycles
                bus_head[bus] += 1
                transfers.append(TransferRecord(f"dram traffic of {s}", bus, start, start + cost.dram_cycles,
                                                cost.dram_bytes))
        first_op = graph.op_by_name[plan.stacks[s][0]]
        record = TaskRecord(
            s, plan.stacks[s], core, first_op.phase.value, start, end,
            cost.dram_cycles if cost else 0, cost.dram_read_bytes if cost else 0, cost.dram_write_bytes if cost else 0,
            cost.energy_pj if cost else 0.0, cores if len(cores) > 1 else (),
        )
        started.append(_Started(record, cost, tuple(copies)))
        end_of[s] = end
        for c in cores:
            if c in pending:
                core_free[c] = end
                head[c] += 1
        previous_end = end if plan.serial else 0
        remaining -= 1
    return _Run(tuple(started), tuple(transfers), copy_start)


def _energy_breakdown(hw: Accelerator, run: _Run) -> dict[str, float]:
    """Energy by component, in start order: per copy the link's energy per bit, a read at the
    source memory and a write at the destination; per stack the cost model's compute, register, local-memory,
    DRAM and DRAM-link energies (by memory and link for a stack that spans memories)."""
    energy: dict[str, float] = defaultdict(float)
    core_memory = {c.name: c.memory for c in hw.cores}
    for item in run.started:
        memory = core_memory[item.record.core]
        for copy in item.copies:
            bits = copy.size_bytes * 8
            energy[f"link:{copy.link.name}"] += bits * copy.link.energy_pj_per_bit
            energy[f"memory:{copy.source_memory}"] += bits * hw.memories[copy.source_memory].read_energy_pj_per_bit
            energy[f"memory:{copy.memory}"] += bits * hw.memories[copy.memory].write_energy_pj_per_bit
        cost = item.cost
        if cost is not None:
            if cost.energy_by_part:  # a stack that spans memories: local, DRAM-link and link energy by part
                for part, part_pj in cost.energy_by_part:
                    energy[part] += part_pj
            else:
                if cost.dram_cycles:
                    energy[f"link:{hw.link_between(DRAM, item.record.core).name}"] += cost.dram_link_energy_pj
                energy[f"memory:{memory}"] += cost.local_energy_pj
            energy["compute"] += cost.compute_energy_pj
            if cost.register_energy_pj:
                energy["registers"] += cost.register_energy_pj
            energy["dram"] += cost.dram_energy_pj
    return energy


def _memory_occupancy(graph: Graph, hw: Accelerator, plan: Plan, structure: _Structure, run: _Run,
                      limits: Mapping[str, int], violations: list[Violation]
                      ) -> tuple[dict[str, tuple[tuple[int, int], ...]], dict[str, int], dict[str, int], int]:
    """Occupancy curves and peaks of every memory (module docstring, "Memory occupancy"), and a
    capacity violation for every memory above its capacity (or its budget in `limits`)."""
    stack_of, on_chip_home = structure.stack_of, structure.on_chip_home
    core_memory = {c.name: c.memory for c in hw.cores}
    start_of = {s.record.name: s.record.start_cycle for s in run.started}
    end_of = {s.record.name: s.record.end_cycle for s in run.started}
    ran = {s.record.name for s in run.started}
    events: dict[str, list[tuple[int, int]]] = defaultdict(list)
    static_dram = sum(t.size_bytes for t in graph.tensors.values() if t.is_static)
    events[DRAM].append((0, static_dram))  # static bytes stay: the curve ends at its static level
    for name, tensor in graph.tensors.items():
        if tensor.is_static or name in structure.internal:
            continue
        producer = graph.producer.get(name)
        if producer is not None and stack_of[producer] not in start_of:
            continue  # never ran (deadlock)
        alloc = start_of[stack_of[producer]] if producer is not None else 0
        reader_stacks = {stack_of[r] for r in graph.consumers[name]}
        ends = [end_of[r] for r in reader_stacks if r in end_of]
        free = max(ends, default=end_of[stack_of[producer]] if producer is not None else 0)
        free = max(free, alloc)
        home = on_chip_home.get(name)
        memory = DRAM if home is None else core_memory[home]
        if free > alloc:
            events[memory] += [(alloc, tensor.size_bytes), (free, -tensor.size_bytes)]
    for (t, memory), begin in run.copy_start.items():
        last = max((end_of[stack_of[r]] for r in graph.consumers[t]
                    if stack_of[r] in ran and core_memory[structure.core_of_op[r]] == memory), default=begin)
        events[memory] += [(begin, graph.tensors[t].size_bytes), (last, -graph.tensors[t].size_bytes)]
    for item in run.started:
        r = item.record
        if item.cost is not None and r.end_cycle > r.start_cycle:
            for memory, size in item.cost.working_set_by_memory or ((core_memory[r.core], item.cost.working_set_bytes),):
                events[memory] += [(r.start_cycle, size), (r.end_cycle, -size)]
    capacity = {DRAM: hw.dram.capacity_bytes, **{m.name: m.capacity_bytes for m in hw.memories.values()}}
    curves: dict[str, tuple[tuple[int, int], ...]] = {}
    peaks: dict[str, int] = {}
    for memory in capacity:
        level, peak, peak_at, points = 0, 0, 0, [(0, 0)]
        for time, delta in sorted(events.get(memory, []), key=lambda e: (e[0], e[1])):
            level += delta
            if points[-1][0] == time:
                points[-1] = (time, level)
            else:
                points.append((time, level))
            if level > peak:
                peak, peak_at = level, time
        curves[memory] = tuple(points)
        peaks[memory] = peak
        allowed = min(capacity[memory], limits.get(memory, capacity[memory]))
        if peak > allowed:
            what = "capacity" if allowed == capacity[memory] else "budget"
            violations.append(Violation("capacity", f"memory {memory!r} holds {peak} bytes at cycle {peak_at}, "
                                                    f"{peak - allowed} more than its {what} {allowed}"))
    return curves, peaks, capacity, static_dram


ENERGY_RELATIVE_TOLERANCE = 1e-9
"""Energy is a float sum whose order may differ between a solver and the simulator."""


@dataclass(frozen=True)
class Claim:
    """What a solver says its plan achieves; None fields are not checked. `latency_is_upper_bound`:
    the simulated latency may be lower (a schedule whose orders are fixed but whose start times the
    simulator compacts, as for an allocation that is not proven optimal)."""

    latency_cycles: int | None = None
    energy_pj: float | None = None
    peak_memory_bytes: Mapping[str, int] | None = None
    latency_is_upper_bound: bool = False
    energy_relative_tolerance: float = ENERGY_RELATIVE_TOLERANCE


@dataclass(frozen=True)
class CheckReport:
    ok: bool
    differences: tuple[str, ...]  # every violation, then every disagreement
    result: SimulationResult
    disagreements: tuple[str, ...] = ()  # where the claim and the simulation differ


def disagreements(claimed: Claim, latency_cycles: int, energy_pj: float,
                  peak_memory_bytes: Mapping[str, int] | None = None, latency_source: str = "") -> list[str]:
    """Where `claimed` differs from what was measured (see `Claim`), each with by how much;
    `latency_source` (e.g. the task that ends last) is appended to a latency difference."""
    out = []
    if claimed.latency_cycles is not None and (
            latency_cycles > claimed.latency_cycles if claimed.latency_is_upper_bound
            else latency_cycles != claimed.latency_cycles):
        out.append(f"latency: claimed {claimed.latency_cycles} cycles, simulated {latency_cycles} "
                   f"({latency_cycles - claimed.latency_cycles:+d}){latency_source}")
    if claimed.energy_pj is not None and not math.isclose(claimed.energy_pj, energy_pj,
                                                         rel_tol=claimed.energy_relative_tolerance):
        out.append(f"energy: claimed {claimed.energy_pj:.6g} pJ, simulated {energy_pj:.6g} pJ")
    for memory, claimed_peak in (claimed.peak_memory_bytes or {}).items():
        if peak_memory_bytes is None or memory not in peak_memory_bytes:
            raise InputError(f"claim names unknown memory {memory!r}")
        if claimed_peak != peak_memory_bytes[memory]:
            out.append(f"peak memory of {memory!r}: claimed {claimed_peak} bytes, simulated {peak_memory_bytes[memory]}")
    return out


def check(graph: Graph, hw: Accelerator, plan: Plan, claimed: Claim, table: CostTable | None = None,
          limits_bytes: Mapping[str, int] | None = None) -> CheckReport:
    """Simulate `plan` (with memory budgets `limits_bytes`, see `simulate`) and compare with
    `claimed` (`disagreements`); every violation is a difference too."""
    result = simulate(graph, hw, plan, table, limits_bytes)
    last = max(result.tasks, key=lambda t: t.end_cycle) if result.tasks else None
    tail = f"; the simulated schedule ends with {last.name!r} on {last.core!r}" if last else ""
    differences = disagreements(claimed, result.latency_cycles, result.energy_pj, result.peak_memory_bytes, tail)
    if any(d.startswith("energy:") for d in differences):
        parts = ", ".join(f"{k} {v:.4g}" for k, v in result.energy_breakdown_pj.items())
        differences = [f"{d} ({parts})" if d.startswith("energy:") else d for d in differences]
    violations = [f"{v.kind} violation: {v.message}" for v in result.violations]
    return CheckReport(not violations and not differences, tuple(violations + differences), result,
                       tuple(differences))
