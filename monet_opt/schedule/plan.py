"""A plan: fusion stacks, stack -> core, per-core order, and where each saved activation lives.

A plan is what every optimiser produces and what the validation scheduler simulates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from monet_opt.cost.model import Cost, CostTable
from monet_opt.errors import InfeasibleError, InputError
from monet_opt.workload.ir import Graph, Phase, TensorRole


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
    stacks run one at a time, in the order of their last op in the (recompute-extended) graph,
    each starting when the previous one has ended (the execution model of checkpoint plans, in
    which memory at each step is exactly the step-indexed accounting of the optimisers).
    `dram_order`: DRAM link -> the stacks with DRAM traffic on it, in the order they take it (absent
    link: first come, first served); with every core order and link order fixed, the simulated
    schedule is the earliest one that respects them (the schedule an allocation solver claims)."""

    stacks: Mapping[str, tuple[str, ...]]
    core_of: Mapping[str, str]
    core_order: Mapping[str, tuple[str, ...]]
    residency: Mapping[str, Residency] = field(default_factory=dict)
    recompute_groups: tuple[tuple[str, ...], ...] = ()
    serial: bool = False
    dram_order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


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
    for core, order in plan.core_order.items():
        if core not in core_names:
            raise InputError(f"plan: core_order names unknown core {core!r}")
        for stack in order:
            if stack not in plan.stacks:
                raise InputError(f"plan: core_order[{core!r}] names unknown stack {stack!r}")
    for value, decision in plan.residency.items():
        if value not in graph.saved_for_backward:
            raise InputError(f"plan: residency names {value!r}, which is not saved for backward")
        if graph.tensors[value].role is not TensorRole.ACTIVATION and decision is not Residency.DRAM:
            raise InputError(f"plan: {value!r} is a network input; it can only stay in DRAM")
        if not isinstance(decision, Residency):
            raise InputError(f"plan: residency of {value!r} is {decision!r}, not one of {[r.value for r in Residency]}")
    for link, order in plan.dram_order.items():
        for stack in order:
            if stack not in plan.stacks:
                raise InputError(f"plan: dram_order[{link!r}] names unknown stack {stack!r}")
    grouped: set[str] = set()
    for group in plan.recompute_groups:
        for op in group:
            if op not in graph.op_by_name or graph.op_by_name[op].phase is not Phase.FORWARD:
                raise InputError(f"plan: recompute group {group!r} names {op!r}, which is not a forward op")
            if op in grouped:
                raise InputError(f"plan: op {op!r} is in two recompute groups")
            grouped.add(op)


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
