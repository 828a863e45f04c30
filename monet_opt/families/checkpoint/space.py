"""The checkpoint decision space of a training graph on an accelerator (formulations/checkpointing.md, section 5).

A checkpoint plan keeps every op on the core of a fixed allocation, unfused, runs the stacks one
at a time (`Plan.serial`), and decides for each saved activation where it waits for the backward
pass: DRAM, ON_CHIP (the producer core's memory) or RECOMPUTE, plus which neighbouring
recomputations run fused. `CheckpointSpace` precomputes everything the optimisers need about
that space: the steps and their coordinates, the prices of every op under every on-chip
combination, the recompute anchors, the candidate fused groups; and it turns decisions into a
`Plan` that the validation scheduler simulates.

Coordinates follow the simulator's serial order (`simulate.insert_recomputation`): a recomputation
is anchored at an op of the reference order (the first backward reader of the value it restores, or
the earliest anchor of the recomputations that need it) and runs right before the first step whose
reach (the latest reference position of its ops and of the steps before it) is at or after that op;
recomputations that run before the same step run in the order of their anchor ops, and those with
the same anchor in forward order. The coordinate axis numbers *events* in that order: per step, one
event for each anchor op that runs before it, the last of them shared with the step itself. With F
forward ops and width W = F + 1, step k sits at event(k) * W + F and the recomputation of forward op
o (forward index f) anchored at an op with event e at e * W + f. An unfused plan has one anchor op
per step, so event(k) = k: op k at k * W + F, its recomputations at k * W + f. In a fused plan a
step whose ops span a long stretch of the reference order (a stack that ends with a late op) can
have many anchors before it, each with its own event: ordering them by forward index instead
would misplace the values they free between them (tests/test_fusion.py pins it).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families.checkpoint.order import reorder
from monet_opt.families.remat.problem import RematProblem
from monet_opt.model.cost.model import Cost, CostTable
from monet_opt.model.hardware.model import DRAM, Accelerator
from monet_opt.model.workload.ir import Graph, Phase, TensorRole
from monet_opt.schedule.plan import Plan, Residency, default_plan, serial_sequence, stack_name
from monet_opt.schedule.simulate import SimulationResult, insert_recomputation, simulate

MAX_GROUP_OPS = 4
"""Longest chain of recomputations considered for fusion into one stack."""


@dataclass(frozen=True)
class CostWeights:
    """What a plan minimises: latency_weight * latency_cycles + energy_weight * energy_pj, or, when
    `product`, latency_cycles * energy_pj (the energy-delay product, cycles x pJ: the plan family's
    `edp`, PLAN_OBJECTIVES). `latency` and `energy` (OBJECTIVES) are the checkpoint family's cases;
    its exact model rounds each step's weighted cost to an integer (1 cycle, 1 pJ)."""

    name: str
    latency_weight: float
    energy_weight: float
    product: bool = False

    def of(self, latency_cycles: float, energy_pj: float) -> float:
        if self.product:
            return latency_cycles * energy_pj
        return self.latency_weight * latency_cycles + self.energy_weight * energy_pj


OBJECTIVES = {"latency": CostWeights("latency", 1.0, 0.0), "energy": CostWeights("energy", 0.0, 1.0)}
PLAN_OBJECTIVES = {**OBJECTIVES, "edp": CostWeights("edp", 0.0, 0.0, product=True)}
"""The plan family's objectives: the checkpoint family's, and the energy-delay product."""


@dataclass(frozen=True)
class Price:
    """One way a step can run: which of its saved activations never touch DRAM, and what it then
    costs. For an original step, a value in `on_chip` is kept ON_CHIP, or (a value its fused stack
    produces and only it reads in the forward pass) recomputed, so the stack never writes it out."""

    on_chip: frozenset[str]
    latency_cycles: int
    energy_pj: float
    working_set_bytes: int
    working_sets: tuple[tuple[str, int], ...] = ()  # (memory, bytes) of a stack that spans memories


def unsaved_links(graph: Graph, ops: Collection[str]) -> dict[str, tuple[str, str]]:
    """Op of `ops` -> (value, reader) when the op passes `value` (unsaved, not an output of the
    graph) to its only reader, also one of `ops`, and writes nothing else that a forward op reads:
    the links of the chains that may be recomputed as one fused stack (`Group`)."""
    out = {}
    for name in ops:
        outputs = graph.op_by_name[name].outputs
        links = [t for t in outputs if t not in graph.saved_for_backward and t not in graph.outputs
                 and len(graph.consumers[t]) == 1 and graph.consumers[t][0] in ops]
        forward_read = [t for t in outputs if t not in links
                        and any(graph.op_by_name[c].phase is Phase.FORWARD for c in graph.consumers[t])]
        if len(links) == 1 and not forward_read:
            out[name] = (links[0], graph.consumers[links[0]][0])
    return out


@dataclass(frozen=True)
class Group:
    """A candidate fused recomputation: a chain of forward ops on one core, each passing its
    only consumer an unsaved value (which then never leaves the core)."""

    ops: tuple[str, ...]
    links: tuple[str, ...]  # the values passed inside
    core: str
    prices: tuple[Price, ...]


@dataclass(frozen=True)
class Decisions:
    """A checkpoint plan in the space's terms: residency of each saved activation (absent: DRAM),
    the fused recompute groups, and the order in which the ops run (None: the graph's reference
    order; else a valid order of `order.py`, whose space `CheckpointSpace.reordered` gives)."""

    residency: Mapping[str, Residency]
    groups: tuple[tuple[str, ...], ...] = ()
    op_order: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Evaluation:
    """A plan's simulation, reduced to what checkpointing is judged by."""

    latency_cycles: int
    energy_pj: float
    dynamic_dram_peak_bytes: int
    local_overflow_bytes: int  # how far the worst local memory is above its budget (0: fits)
    simulation: SimulationResult

    def objective(self, weights: CostWeights) -> float:
        """The plan's cost under `weights`."""
        return weights.of(self.latency_cycles, self.energy_pj)


class CheckpointSpace:
    """See the module docstring. `core_of_op` fixes the allocation (default: the greedy
    earliest-finish allocation of `default_plan`); `local_budget_bytes` bounds local memories below
    their capacity: the cost model tiles every op to fit the budget and the simulator checks the
    plan against it (`CostTable` and `simulate` take the budgets; the accelerator is unchanged)."""

    def __init__(self, graph: Graph, hw: Accelerator, core_of_op: Mapping[str, str] | None = None,
                 local_budget_bytes: Mapping[str, int] | None = None,
                 stacks: Sequence[tuple[tuple[str, ...], tuple[str, ...]]] | None = None) -> None:
        """`stacks`: a fusion partition, (ops, the core of each op) per stack, that the plan keeps
        (default: every op alone on `core_of_op`'s core); it must run serially in the order of the
        stacks' last ops."""
        for memory, size in (local_budget_bytes or {}).items():
            if memory not in hw.memories:
                raise InputError(f"local budget names unknown memory {memory!r}")
            if size < 1:
                raise InputError(f"local budget of {memory!r} must be at least one byte, got {size}")
        self.graph = graph
        self.hw = hw
        self.limits_bytes = dict(local_budget_bytes or {})
        self.table = CostTable(graph, hw, self.limits_bytes)
        if stacks is not None:
            core_of_op = {op: c for ops, cores in stacks for op, c in zip(ops, cores, strict=True)}
        elif core_of_op is None:
            core_of_op = default_plan(graph, self.table).core_of
        missing = [op.name for op in graph.ops if op.name not in core_of_op]
        if missing:
            raise InputError(f"checkpoint allocation: op {missing[0]!r} has no core")
        unknown = [(op, c) for op, c in core_of_op.items() if c not in {core.name for core in hw.cores}]
        if unknown:
            raise InputError(f"checkpoint allocation: op {unknown[0][0]!r} is on unknown core {unknown[0][1]!r}")
        self.core_of_op = dict(core_of_op)
        self.memory_of_core = {c.name: c.memory for c in hw.cores}
        self.local_budget_bytes = {m: hw.usable_bytes(m, self.limits_bytes) for m in hw.memories}
        self.position = {op.name: k for k, op in enumerate(graph.ops)}
        self.stacks = self._ordered_stacks(stacks)
        self.step_of_op = {op: j for j, (ops, _) in enumerate(self.stacks) for op in ops}
        self._reach = list(itertools.accumulate((self.position[ops[-1]] for ops, _ in self.stacks), max))
        self.forward = tuple(op.name for op in graph.ops if op.phase is Phase.FORWARD)
        self.forward_index = {o: i for i, o in enumerate(self.forward)}
        self.decisions = tuple(t for t in graph.saved_for_backward
                               if graph.tensors[t].role is TensorRole.ACTIVATION and t in graph.producer
                               and not self._passed_inside(t))
        for ops, cores in self.stacks:
            cost = self.table.get(ops, cores)
            if not isinstance(cost, Cost):
                raise InfeasibleError(f"checkpoint allocation: {cost.reason}")

    def reordered(self, op_order: Sequence[str] | None) -> CheckpointSpace:
        """The same space with the ops run in `op_order` (an unfused space keeps its allocation and
        local budgets); itself for None. InputError for an order that breaks a dependency."""
        if op_order is None:
            return self
        if any(len(ops) > 1 for ops, _ in self.stacks):
            raise InputError("checkpoint: the order is a decision only for unfused plans")
        return CheckpointSpace(reorder(self.graph, op_order), self.hw, self.core_of_op, self.limits_bytes)

    def _ordered_stacks(self, stacks: Sequence[tuple[tuple[str, ...], tuple[str, ...]]] | None
                        ) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
        """The steps of the plan's original ops in the serial order (`serial_sequence`); InputError
        for a partition that does not cover every op once."""
        if stacks is None:
            return tuple(((op.name,), (self.core_of_op[op.name],)) for op in self.graph.ops)
        listed = sorted(op for ops, _ in stacks for op in ops)
        if listed != sorted(op.name for op in self.graph.ops):
            raise InputError("checkpoint: the fusion stacks do not cover every op exactly once")
        named = {f"s{j}": (tuple(ops), tuple(cores)) for j, (ops, cores) in enumerate(stacks)}
        return tuple(named[s] for s in serial_sequence(self.graph, {s: ops for s, (ops, _) in named.items()}))

    def _passed_inside(self, t: str) -> bool:
        """Every reader of `t`, forward and backward, is in its producer's fused stack: no choice."""
        ops = self.stacks[self.step_of_op[self.graph.producer[t]]][0]
        return len(ops) > 1 and set(self.graph.consumers[t]) <= set(ops) and t not in self.graph.outputs

    # ---- coordinates and positions
    @property
    def width(self) -> int:
        """Coordinates per event: F + 1 (module docstring)."""
        return len(self.forward) + 1

    def coordinate(self, k: int) -> int:
        """The coordinate of step k (the k-th stack in serial order)."""
        return self._events[0][k] * self.width + len(self.forward)

    @property
    def horizon(self) -> int:
        """One more than the largest coordinate of a step or recomputation."""
        return (self._events[0][-1] + 1) * self.width if self.stacks else 0

    def slot(self, op: str) -> int:
        """The slot of recomputations anchored at `op`: the simulator runs them right before the
        first step (in serial order) whose last op does not come before `op`."""
        return bisect.bisect_left(self._reach, self.position[op])

    def first_backward_op(self, t: str) -> str:
        """The first backward reader of `t` in the reference order: the anchor of its recomputation."""
        return min(self.graph.saved_for_backward[t], key=self.position.__getitem__)

    @cached_property
    def _events(self) -> tuple[tuple[int, ...], dict[str, int]]:
        """(event of each step, event of each anchor op): module docstring, "Coordinates"."""
        anchors_by_slot: dict[int, list[str]] = {}
        for op in sorted({self.first_backward_op(t) for t in self.decisions}, key=self.position.__getitem__):
            anchors_by_slot.setdefault(self.slot(op), []).append(op)
        step_events: list[int] = []
        anchor_events: dict[str, int] = {}
        event = 0
        for k in range(len(self.stacks)):
            before = anchors_by_slot.get(k, [])
            for op in before[:-1]:
                anchor_events[op] = event
                event += 1
            if before:
                anchor_events[before[-1]] = event
            step_events.append(event)
            event += 1
        return tuple(step_events), anchor_events

    def step(self, op: str) -> int:
        return self.step_of_op[op]

    def memory_of_op(self, op: str) -> str:
        return self.memory_of_core[self.core_of_op[op]]

    def first_backward_reader(self, t: str) -> int:
        """The event of the first backward reader of `t`, the anchor of its recomputation (module
        docstring, "Coordinates"): its recomputation sits at this event times `width` plus its
        producer's forward index."""
        return self._events[1][self.first_backward_op(t)]

    def last_backward_reader(self, t: str) -> int:
        """The step of the last backward reader of `t`."""
        return max(self.step(r) for r in self.graph.saved_for_backward[t])

    def recomputable_value(self, a: str) -> bool:
        """Whether saved activation `a` may be recomputed: only when its recomputation, which runs
        right before its first backward reader's step, comes after the steps of its producer and of
        every forward reader. Not when a backward reader shares the producer's fused stack (the
        recomputation would wait for the stack it feeds) or a forward reader's (it would run before
        the forward pass has used the value)."""
        forward = [self.step(r) for r in self.forward_consumers(a)]
        return self.slot(self.first_backward_op(a)) > max([self.step(self.graph.producer[a]), *forward])

    def forward_consumers(self, t: str) -> list[str]:
        return [c for c in self.graph.consumers[t] if self.graph.op_by_name[c].phase is Phase.FORWARD]

    def last_reader(self, t: str, forward_only: bool = False) -> int | None:
        readers = self.forward_consumers(t) if forward_only else self.graph.consumers[t]
        return max((self.step(r) for r in readers), default=None)

    @cached_property
    def on_chip_eligible(self) -> frozenset[str]:
        """Saved activations that may stay ON_CHIP: every reader (and every recomputation of a
        reader, which runs on the reader's core) uses the producer core's memory, so no link copy
        is needed (copies are outside the checkpoint model)."""
        out = set()
        for a in self.decisions:
            memory = self.memory_of_op(self.graph.producer[a])
            if a not in self.graph.outputs and all(self.memory_of_op(r) == memory for r in self.graph.consumers[a]):
                out.add(a)
        return frozenset(out)

    def needs_when_recomputed(self, t: str) -> bool:
        """Whether the recomputation of a reader of activation `t` must recompute `t` too (t is not
        saved at all) or only when t itself is recomputed (t is a decision)."""
        return t not in self.graph.saved_for_backward

    @cached_property
    def anchors(self) -> dict[str, tuple[int, ...]]:
        """Forward op -> the events of the anchors at which its recomputation can run
        (`first_backward_reader`): first backward readers of the saved outputs of it and of the
        recomputable readers downstream. Ops without any anchor are never recomputed."""
        out: dict[str, set[int]] = {}
        for o in reversed(self.forward):
            slots: set[int] = set()
            for t in self.graph.op_by_name[o].outputs:
                if self.graph.tensors[t].role is not TensorRole.ACTIVATION:
                    continue
                if t in self.decisions and self.recomputable_value(t):
                    slots.add(self.first_backward_reader(t))
                for c in self.forward_consumers(t):
                    slots |= out.get(c, set())
            if slots:
                out[o] = slots
        return {o: tuple(sorted(s)) for o, s in out.items()}

    @cached_property
    def recomputable(self) -> tuple[str, ...]:
        return tuple(o for o in self.forward if o in self.anchors)

    def sources(self, o: str) -> list[tuple[str, str, str]]:
        """Why `o` may be recomputed: ("own", a, "") for each saved output a that may be recomputed
        (`recomputable_value`); ("reader", c, u) for each recomputable forward reader c of an output
        u that is not kept (u unsaved, or recomputed)."""
        out = []
        for t in self.graph.op_by_name[o].outputs:
            if self.graph.tensors[t].role is not TensorRole.ACTIVATION:
                continue
            recomputable = t in self.decisions and self.recomputable_value(t)
            if recomputable:
                out.append(("own", t, ""))
            if recomputable or self.needs_when_recomputed(t):
                out.extend(("reader", c, t) for c in self.forward_consumers(t) if c in self.anchors)
        return out

    # ---- prices
    @cached_property
    def pricing(self) -> tuple[Graph, CostTable]:
        """The graph in which every saved activation that may be recomputed is: it holds a recompute
        op for every recomputable op, and prices them exactly as in any plan (the cost model reads
        sizes, on-chip operands and, for fused stacks, which values stay inside)."""
        plan = self.plan(Decisions({a: Residency.RECOMPUTE for a in self.decisions if self.recomputable_value(a)}))
        graph, _ = insert_recomputation(self.graph, plan)
        missing = [o for o in self.recomputable if f"{o}.recompute" not in graph.op_by_name]
        assert not missing, f"recomputable op without a recompute op: {missing[:1]}"
        return graph, CostTable(graph, self.hw, self.limits_bytes)

    def _prices(self, table: CostTable, ops: tuple[str, ...], core: str | tuple[str, ...], eligible: Iterable[str],
                rename: Mapping[str, str]) -> tuple[Price, ...]:
        eligible = sorted(set(eligible))
        out = []
        for k in range(len(eligible) + 1):
            for subset in itertools.combinations(eligible, k):
                cost = table.get(ops, core, frozenset(rename.get(a, a) for a in subset))
                if not isinstance(cost, Cost):
                    raise InfeasibleError(f"checkpoint: {cost.reason}")
                out.append(Price(frozenset(subset), cost.latency_cycles, cost.energy_pj, cost.working_set_bytes,
                                 cost.working_set_by_memory))
        return tuple(out)

    def operands_on_chip_eligible(self, op: str) -> list[str]:
        o = self.graph.op_by_name[op]
        return [t for t in o.inputs + o.outputs if t in self.on_chip_eligible]

    @cached_property
    def internal_values(self) -> frozenset[str]:
        """Values a fused stack produces and only its own ops read: they never leave it."""
        out = set()
        for ops, _ in self.stacks:
            members = set(ops)
            for op in ops:
                for t in self.graph.op_by_name[op].outputs:
                    readers = self.graph.consumers[t]
                    if len(ops) > 1 and readers and set(readers) <= members and t not in self.graph.outputs:
                        out.add(t)
        return frozenset(out)

    @cached_property
    def recomputed_inside(self) -> frozenset[str]:
        """Saved activations whose forward readers are all in their producer's fused stack: when
        recomputed, the stack passes them inside and never writes them to DRAM."""
        out = set()
        for a in self.decisions:
            ops = self.stacks[self.step(self.graph.producer[a])][0]
            readers = self.forward_consumers(a)
            if len(ops) > 1 and readers and set(readers) <= set(ops) and a not in self.graph.outputs:
                out.add(a)
        return frozenset(out)

    def step_eligible(self, j: int) -> list[str]:
        """The saved activations whose choice changes step j's price: ON_CHIP-eligible operands of
        its ops, and the values it passes inside when recomputed (`recomputed_inside`)."""
        ops = self.stacks[j][0]
        out = [t for op in ops for t in self.operands_on_chip_eligible(op)]
        out += [t for op in ops for t in self.graph.op_by_name[op].outputs if t in self.recomputed_inside]
        return list(dict.fromkeys(out))

    @cached_property
    def step_prices(self) -> tuple[tuple[Price, ...], ...]:
        """Step j -> its price for every subset of `step_eligible(j)` that never touches DRAM."""
        return tuple(self._prices(self.table, ops, cores, self.step_eligible(j), {})
                     for j, (ops, cores) in enumerate(self.stacks))

    @cached_property
    def op_prices(self) -> dict[str, tuple[Price, ...]]:
        """Original op -> its prices (an unfused space: one op per step)."""
        if any(len(ops) > 1 for ops, _ in self.stacks):
            raise InputError("checkpoint: op prices exist only for an unfused plan")
        return {ops[0]: prices for (ops, _), prices in zip(self.stacks, self.step_prices, strict=True)}

    def _clone_inputs_eligible(self, ops: Iterable[str]) -> list[str]:
        ops = list(ops)
        produced = {t for o in ops for t in self.graph.op_by_name[o].outputs}
        return [t for o in ops for t in self.graph.op_by_name[o].inputs
                if t in self.on_chip_eligible and t not in produced]

    @cached_property
    def recompute_prices(self) -> dict[str, tuple[Price, ...]]:
        """Recomputable op -> the price of its recomputation alone, per subset of ON_CHIP inputs."""
        graph, table = self.pricing
        return {o: self._prices(table, (f"{o}.recompute",), self.core_of_op[o], self._clone_inputs_eligible([o]),
                                {a: f"{a}@recompute" for a in self.decisions})
                for o in self.recomputable}

    @cached_property
    def groups(self) -> tuple[Group, ...]:
        """Candidate fused recomputations (see `Group`), 2..MAX_GROUP_OPS ops, that fit their core."""
        graph, table = self.pricing
        unsaved_link = {o: link for o, link in unsaved_links(self.graph, set(self.recomputable)).items()
                        if self.core_of_op[link[1]] == self.core_of_op[o]}  # op -> (its value, the only reader)
        out = []
        for start in self.recomputable:
            chain, values = [start], []
            while chain[-1] in unsaved_link and len(chain) < MAX_GROUP_OPS:
                value, reader = unsaved_link[chain[-1]]
                chain.append(reader)
                values.append(value)
                ops = tuple(f"{o}.recompute" for o in chain)
                if not isinstance(table.get(ops, self.core_of_op[start]), Cost):
                    break
                prices = self._prices(table, ops, self.core_of_op[start], self._clone_inputs_eligible(chain),
                                      {a: f"{a}@recompute" for a in self.decisions})
                out.append(Group(tuple(chain), tuple(values), self.core_of_op[start], prices))
        return tuple(out)

    # ---- decisions -> plan -> simulation
    def recompute_anchors(self, residency: Mapping[str, Residency]) -> dict[str, int]:
        """Recomputed forward op -> its anchor's event, by the simulator's rule: the earliest anchor
        among the recomputations that need it."""
        out: dict[str, int] = {}
        for o in reversed(self.recomputable):
            slots = []
            for kind, x, u in self.sources(o):
                if kind == "own" and residency.get(x) is Residency.RECOMPUTE:
                    slots.append(self.first_backward_reader(x))
                elif kind == "reader" and x in out and (
                        self.needs_when_recomputed(u) or residency.get(u) is Residency.RECOMPUTE):
                    slots.append(out[x])
            if slots:
                out[o] = min(slots)
        return out

    def stack_name(self, j: int) -> str:
        return stack_name(self.stacks[j][0])

    def plan(self, decisions: Decisions) -> Plan:
        order: dict[str, list[str]] = {c.name: [] for c in self.hw.cores}
        for j, (_, cores) in enumerate(self.stacks):
            for core in dict.fromkeys(cores):
                order[core].append(self.stack_name(j))
        return Plan(
            stacks={self.stack_name(j): ops for j, (ops, _) in enumerate(self.stacks)},
            core_of={self.stack_name(j): cores[0] for j, (_, cores) in enumerate(self.stacks)},
            core_order={c: tuple(o) for c, o in order.items()},
            residency={a: r for a, r in decisions.residency.items() if r is not Residency.DRAM},
            recompute_groups=decisions.groups,
            serial=True,
            placement={op: c for ops, cores in self.stacks for op, c in zip(ops, cores, strict=True) if c != cores[0]},
        )

    def evaluate(self, decisions: Decisions) -> Evaluation:
        return self.evaluation_of(simulate(self.graph, self.hw, self.plan(decisions), limits_bytes=self.limits_bytes))

    def evaluation_of(self, result: SimulationResult) -> Evaluation:
        """A simulation of one of this space's plans, reduced to what checkpointing is judged by."""
        overflow = max([0] + [result.peak_memory_bytes[m] - b for m, b in self.local_budget_bytes.items()])
        return Evaluation(result.latency_cycles, result.energy_pj,
                          result.peak_memory_bytes[DRAM] - result.static_dram_bytes, overflow, result)

    @cached_property
    def op_peak_bound_bytes(self) -> int:
        """A lower bound on the dynamic DRAM peak of every plan in every order: while an op runs,
        its dynamic inputs and outputs are all in DRAM except those that may stay on chip
        (`on_chip_eligible`) or never leave a fused stack (`internal_values`, `recomputed_inside`);
        the largest such sum over the ops (bytes)."""
        g = self.graph
        elsewhere = self.on_chip_eligible | self.internal_values | self.recomputed_inside
        return max((sum(g.tensors[t].size_bytes for t in dict.fromkeys(op.inputs + op.outputs)
                        if not g.tensors[t].is_static and t not in elsewhere) for op in g.ops), default=0)

    @cached_property
    def dram_dynamic_capacity_bytes(self) -> int:
        """DRAM capacity less the static bytes that every plan holds all step long (weights, optimizer
        states, gradients updated at the end): no plan's dynamic DRAM peak may exceed it (negative
        when the static bytes alone do not fit)."""
        static = sum(t.size_bytes for t in self.graph.tensors.values() if t.is_static)
        return self.hw.dram.capacity_bytes - static

    @cached_property
    def store_all(self) -> Evaluation:
        return self.evaluate(Decisions({}))

    def greedy_groups(self, residency: Mapping[str, Residency], weights: CostWeights) -> tuple[tuple[str, ...], ...]:
        """Fuse recomputations where a candidate group's members are all recomputed at the same anchor
        and the fused price beats the members' separate prices; longest groups first."""
        anchors = self.recompute_anchors(residency)
        on_chip = {a for a, r in residency.items() if r is Residency.ON_CHIP}

        def cost(prices: tuple[Price, ...], eligible: Iterable[str]) -> float:
            wanted = frozenset(a for a in eligible if a in on_chip)
            price = next(p for p in prices if p.on_chip == wanted)
            return weights.of(price.latency_cycles, price.energy_pj)

        used: set[str] = set()
        chosen = []
        for group in sorted(self.groups, key=lambda g: (-len(g.ops), self.forward_index[g.ops[0]])):
            if any(o not in anchors or o in used for o in group.ops) or len({anchors[o] for o in group.ops}) > 1:
                continue
            fused = cost(group.prices, self._clone_inputs_eligible(group.ops))
            apart = sum(cost(self.recompute_prices[o], self._clone_inputs_eligible([o])) for o in group.ops)
            if fused < apart:
                chosen.append(group.ops)
                used |= set(group.ops)
        return tuple(sorted(chosen, key=lambda g: self.forward_index[g[0]]))


def checkmate_abstraction(space: CheckpointSpace) -> RematProblem:
    """The training graph as Checkmate models one: a node per op in the reference order, cost = its
    latency on its core (cycles, store-all prices), size = bytes of its dynamic outputs, an edge for
    every dynamic value passed (weights, gradients buffers and network inputs are not nodes). Used to
    compare the abstract CP-SAT model with the Checkmate MILP on real training graphs."""
    graph = space.graph
    index = {op.name: k for k, op in enumerate(graph.ops)}
    preds = []
    for op in graph.ops:
        sources = {index[graph.producer[t]] for t in op.inputs
                   if t in graph.producer and not graph.tensors[t].is_static}
        preds.append(tuple(sorted(sources)))
    cost = tuple(space.op_prices[op.name][0].latency_cycles for op in graph.ops)
    size = tuple(sum(graph.tensors[t].size_bytes for t in op.outputs if not graph.tensors[t].is_static)
                 for op in graph.ops)
    return RematProblem(f"{graph.name}@{space.hw.name}", tuple(op.name for op in graph.ops), tuple(preds), cost, size)
