"""A plan: fusion stacks, stack -> core, per-core order, and where each saved activation lives.

A plan is what every optimiser produces and what the validation scheduler simulates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import networkx as nx

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.workload.ir import Graph, Phase, TensorRole


class Residency(StrEnum):
    """Where a value saved for the backward pass waits for its backward readers."""

    DRAM = "dram"  # written to DRAM by its producer, read back by each reader
    ON_CHIP = "on_chip"  # kept in the producer core's local memory; other cores fetch it over a link
    RECOMPUTE = "recompute"  # freed after the forward pass, recomputed before its first backward reader


@dataclass(frozen=True)
class Plan:
    """`stacks`: stack name -> op names in execution order (a singleton stack is one op, unfused);
    `core_of`: stack -> core; `core_order`: core -> its stacks in execution order; `residency`:
    saved activation -> Residency (absent: every value lives in DRAM); `recompute_groups`: sets of
    forward ops whose recomputations run as one fused stack (intermediates stay on chip), each
    given in execution order; recomputations not in a group run one op per stack. `serial`: the
    stacks run one at a time, in the order `serial_sequence` gives for the (recompute-extended)
    graph, each starting when the previous one has ended (the execution model of checkpoint plans, in
    which memory at each step is exactly the step-indexed accounting of the optimisers).
    `dram_order`: DRAM link -> the stacks with DRAM traffic on it, in the order they take it (absent
    link: first come, first served); with every core order and link order fixed, the simulated
    schedule is the earliest one that respects them (the schedule an allocation solver claims).
    `placement`: op -> core for the ops of a fused stack that run on another core than the stack's
    `core_of` (a stack spanning cores: its tiles pass from core to core; it occupies all of them
    and is listed in the order of each). `release_cycles`: stack -> the cycle before which it does
    not start (a static schedule's start times: a plan that delays a stack to keep a memory within
    its budget says so here). A recomputation (`<forward op>.recompute`, see `simulate`) may be
    listed in a core's order and in `release_cycles`: it then runs on that core, at that place,
    instead of where the simulator's rule would put it. `split`: stack of one op -> the cores that op
    is split across, its `core_of` first (its parts run at once, one per core, priced by
    `model.cost.model._price_split`; it occupies all of them and is listed in the order of each; its
    values are in DRAM; a recomputation of it runs unsplit on its `core_of`)."""

    stacks: Mapping[str, tuple[str, ...]]
    core_of: Mapping[str, str]
    core_order: Mapping[str, tuple[str, ...]]
    residency: Mapping[str, Residency] = field(default_factory=dict)
    recompute_groups: tuple[tuple[str, ...], ...] = ()
    serial: bool = False
    dram_order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    placement: Mapping[str, str] = field(default_factory=dict)
    release_cycles: Mapping[str, int] = field(default_factory=dict)
    split: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def op_cores(self, stack: str) -> tuple[str, ...]:
        """The core of each op of `stack`, in the stack's order (a split op: its `core_of`)."""
        return tuple(self.placement.get(op, self.core_of[stack]) for op in self.stacks[stack])

    def stack_cores(self, stack: str) -> tuple[str, ...]:
        """Every core `stack` runs on, its `core_of` first."""
        return self.split.get(stack) or tuple(dict.fromkeys((self.core_of[stack], *self.op_cores(stack))))


def check_plan_input(graph: Graph, plan: Plan, core_names: set[str]) -> None:
    """Reject a structurally malformed plan (InputError): stacks that do not partition the ops,
    unknown cores, residency decisions about values that are not saved activations. Plans that are
    well formed but break a rule (order, eligibility, capacity) are simulated and get violations."""
    seen: dict[str, str] = {}
    for stack, ops in plan.stacks.items():
        if not ops:
            raise InputError(f"plan: stack {stack!r} is empty")
        for op in ops:
            if op not in graph.op_by_name:
                raise InputError(f"plan: stack {stack!r} names unknown op {op!r}")
            if op in seen:
                raise InputError(f"plan: op {op!r} is in stacks {seen[op]!r} and {stack!r}")
            seen[op] = stack
    missing = [op.name for op in graph.ops if op.name not in seen]
    if missing:
        raise InputError(f"plan: {len(missing)} ops are in no stack (first: {missing[0]!r})")
    for stack in plan.stacks:
        if stack not in plan.core_of:
            raise InputError(f"plan: stack {stack!r} has no core")
    for stack, core in plan.core_of.items():
        if stack not in plan.stacks:
            raise InputError(f"plan: core_of names unknown stack {stack!r}")
        if core not in core_names:
            raise InputError(f"plan: stack {stack!r} is assigned to unknown core {core!r}")
    on_chip = {t for t, decision in plan.residency.items() if decision is Residency.ON_CHIP}
    for stack, cores in plan.split.items():
        if stack not in plan.stacks or len(plan.stacks[stack]) != 1:
            raise InputError(f"plan: split names {stack!r}, which is not a stack of one op")
        if len(cores) < 2 or len(set(cores)) != len(cores) or not set(cores) <= core_names:
            raise InputError(f"plan: {stack!r} is split across {list(cores)}, not two or more distinct known cores")
        if cores[0] != plan.core_of.get(stack):
            raise InputError(f"plan: {stack!r} is split across {list(cores)}, which do not start with its core")
        op = graph.op_by_name[plan.stacks[stack][0]]
        if on_chip.intersection(op.inputs + op.outputs):
            raise InputError(f"plan: {stack!r} is split across cores but reads or writes a value kept on chip")
    fused_groups = {recompute_group_name(group) for group in plan.recompute_groups}

    def known(stack: str) -> bool:
        return stack in plan.stacks or is_recompute_name(graph, stack) or stack in fused_groups

    for core, order in plan.core_order.items():
        if core not in core_names:
            raise InputError(f"plan: core_order names unknown core {core!r}")
        for stack in order:
            if not known(stack):
                raise InputError(f"plan: core_order[{core!r}] names unknown stack {stack!r}")
    for stack, cycle in plan.release_cycles.items():
        if not known(stack):
            raise InputError(f"plan: release_cycles names unknown stack {stack!r}")
        if not isinstance(cycle, int) or isinstance(cycle, bool) or cycle < 0:
            raise InputError(f"plan: release cycle of {stack!r} is {cycle!r}, not a non-negative integer")
    for value, decision in plan.residency.items():
        if value not in graph.saved_for_backward:
            raise InputError(f"plan: residency names {value!r}, which is not saved for backward")
        if graph.tensors[value].role is not TensorRole.ACTIVATION and decision is not Residency.DRAM:
            raise InputError(f"plan: {value!r} is a network input; it can only stay in DRAM")
        if not isinstance(decision, Residency):
            raise InputError(f"plan: residency of {value!r} is {decision!r}, not one of {[r.value for r in Residency]}")
    for op, core in plan.placement.items():
        if op not in seen:
            raise InputError(f"plan: placement names unknown op {op!r}")
        if core not in core_names:
            raise InputError(f"plan: op {op!r} is placed on unknown core {core!r}")
    for link, order in plan.dram_order.items():
        for stack in order:
            if not known(stack):
                raise InputError(f"plan: dram_order[{link!r}] names unknown stack {stack!r}")
    grouped: set[str] = set()
    for group in plan.recompute_groups:
        for op in group:
            if op not in graph.op_by_name or graph.op_by_name[op].phase is not Phase.FORWARD:
                raise InputError(f"plan: recompute group {group!r} names {op!r}, which is not a forward op")
            if op in grouped:
                raise InputError(f"plan: op {op!r} is in two recompute groups")
            grouped.add(op)


RECOMPUTE_SUFFIX = ".recompute"
"""The recomputation of forward op o is the op `o.recompute` (`simulate.insert_recomputation`)."""


def stack_name(ops: tuple[str, ...]) -> str:
    """The name of a stack: its op alone, or its first op and how many follow ("a+2")."""
    return ops[0] if len(ops) == 1 else f"{ops[0]}+{len(ops) - 1}"


def recompute_group_name(group: tuple[str, ...]) -> str:
    """The stack of a fused recompute group (`Plan.recompute_groups`): `<first op>.recompute+<members - 1>`."""
    return f"{group[0]}{RECOMPUTE_SUFFIX}+{len(group) - 1}"


def is_recompute_name(graph: Graph, name: str) -> bool:
    """Whether `name` names the recomputation of a forward op of `graph`."""
    op = graph.op_by_name.get(name.removesuffix(RECOMPUTE_SUFFIX)) if name.endswith(RECOMPUTE_SUFFIX) else None
    return op is not None and op.phase is Phase.FORWARD


def serial_sequence(graph: Graph, stacks: Mapping[str, tuple[str, ...]]) -> list[str]:
    """The order in which a serial plan runs its stacks: a topological order of the stacks (each
    after every stack it reads from) that takes, at each step, the ready stack whose last op comes
    earliest in the graph's order; for unfused plans, the graph's order itself. When stacks depend
    on each other in a cycle (a violation), the order of their last ops."""
    position = {op.name: i for i, op in enumerate(graph.ops)}
    stack_of = {op: s for s, ops in stacks.items() for op in ops}
    quotient = nx.DiGraph()
    quotient.add_nodes_from(stacks)
    for s, ops in stacks.items():
        for op in ops:
            for t in graph.op_by_name[op].inputs:
                producer = graph.producer.get(t)
                if producer is not None and producer in stack_of and stack_of[producer] != s:
                    quotient.add_edge(stack_of[producer], s)

    def last_op(s: str) -> int:
        return position[stacks[s][-1]]

    try:
        return list(nx.lexicographical_topological_sort(quotient, key=last_op))
    except nx.NetworkXUnfeasible:
        return sorted(stacks, key=last_op)


def default_plan(graph: Graph, table: CostTable) -> Plan:
    """Layer by layer (no fusion), every value in DRAM, each op in reference order on the eligible core
    that finishes it earliest: finish = max(core free, inputs produced) + latency (bus contention is
    left to the simulator). InfeasibleError when an op can run on no core."""
    core_free = {c.name: 0 for c in table.hw.cores}
    finish: dict[str, int] = {}
    core_of: dict[str, str] = {}
    order: dict[str, list[str]] = {c: [] for c in core_free}
    for op in graph.ops:
        ready = max((finish[p] for p in graph.dag.predecessors(op.name)), default=0)
        best: tuple[int, str] | None = None
        for core in core_free:
            cost = table.get((op.name,), core)
            if isinstance(cost, Cost):
                end = max(core_free[core], ready) + cost.latency_cycles
                if best is None or end < best[0]:
                    best = (end, core)
        if best is None:
            groups = "; ".join(f"{c.name}: {' '.join(sorted(k.value for k in c.op_kinds))}" for c in table.hw.cores)
            raise InfeasibleError(
                f"op {op.name!r} ({op.kind.value}) can run on no core of {table.hw.name!r} (cores run {groups})"
            )
        finish[op.name], core_of[op.name] = best
        core_free[best[1]] = best[0]
        order[best[1]].append(op.name)
    return Plan(
        stacks={op.name: (op.name,) for op in graph.ops},
        core_of=core_of,
        core_order={c: tuple(o) for c, o in order.items()},
    )
