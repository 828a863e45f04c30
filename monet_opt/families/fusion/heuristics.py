"""Fusion partitions without a solver: layer by layer, the fixed rule, and the GA baseline.

- none: every op alone (layer by layer);
- rule: each conv or matmul (forward, dX or dW) with the elementwise and normalisation ops that
  follow it, and a weight gradient with its optimizer update: from each MAC op, repeatedly add the
  earliest consumer of the last op added that is such an op, while the stack stays a valid
  candidate (connected, convex, at most `max_stack` ops, fits);
- ga: one gene per edge of the op graph (1 = fuse its two ops), NSGA-II over (latency, energy)
  (`genetic.nsga2_search`), MONET's or Stream's settings, opening with the space's `start`
  partition where it has one. A genome decodes to the connected
  components of its fused edges, each split into valid candidates (`split`), then `repair`.

`repair` makes any list of op blocks a valid partition: a block that is not a valid candidate is
split; while the stack graph has a cycle, the largest stack on it is split into single ops
(single ops never form a cycle: the op graph is acyclic).
"""

from __future__ import annotations

from collections.abc import Sequence

import networkx as nx

from monet_opt.families.fusion.space import Candidate, FusionSpace, is_convex, priced
from monet_opt.model.workload.ir import MAC_KINDS, OpKind
from monet_opt.solving.common import Deadline
from monet_opt.solving.genetic import GAConfig, nsga2_search

FOLLOWERS = frozenset({
    OpKind.ADD, OpKind.MUL, OpKind.RELU, OpKind.GELU, OpKind.BATCHNORM, OpKind.LAYERNORM,
    OpKind.RELU_BACKWARD, OpKind.GELU_BACKWARD, OpKind.BATCHNORM_BACKWARD, OpKind.LAYERNORM_BACKWARD,
    OpKind.SGD_UPDATE, OpKind.MOMENTUM_UPDATE, OpKind.ADAM_UPDATE, OpKind.ADAMW_UPDATE,
})
"""Op kinds the fixed rule fuses after a MAC op: elementwise, normalisation, optimizer updates."""

MONET_GA = GAConfig(population=100, generations=50, crossover_probability=0.9, mutation_probability=0.1)
STREAM_GA = GAConfig(population=64, generations=250, crossover_probability=0.3, mutation_probability=0.7)
GA_PRESETS = {"monet": MONET_GA, "stream": STREAM_GA}


class _Validator:
    """Valid candidates of a space, memoised: enumerated ones first, others priced on demand."""

    def __init__(self, space: FusionSpace) -> None:
        self.space = space
        self.position = {op.name: i for i, op in enumerate(space.graph.ops)}
        self.known: dict[tuple[str, ...], Candidate | None] = {c.ops: c for c in space.candidates}

    def ordered(self, ops: Sequence[str]) -> tuple[str, ...]:
        return tuple(sorted(ops, key=self.position.__getitem__))

    def __call__(self, ops: Sequence[str]) -> Candidate | None:
        key = self.ordered(ops)
        if key not in self.known:
            valid = (len(key) <= self.space.max_stack and (len(key) == 1 or not self.space.alone & set(key))
                     and nx.is_weakly_connected(self.space.graph.dag.subgraph(key))
                     and is_convex(self.space.graph, key, self.position))
            self.known[key] = priced(self.space.table, key, self.space.residency) if valid else None
        return self.known[key]


def split(validate: _Validator, block: Sequence[str]) -> list[Candidate]:
    """A block as valid candidates: in graph order, each op joins the current candidate if the
    result is still valid, else starts the next one."""
    out: list[Candidate] = []
    current: list[str] = []
    for op in validate.ordered(block):
        if current and validate([*current, op]) is not None:
            current.append(op)
            continue
        if current:
            out.append(validate(current))  # type: ignore[arg-type]
        current = [op]
    if current:
        out.append(validate(current))  # type: ignore[arg-type]
    return out


def repair(space: FusionSpace, blocks: Sequence[Sequence[str]], validate: _Validator | None = None) -> list[Candidate]:
    """A valid partition from op blocks that cover every op once (module docstring)."""
    validate = validate or _Validator(space)
    partition = [c for block in blocks for c in ([validate(block)] if validate(block) else split(validate, block))]
    while True:
        stack_of = {op: i for i, c in enumerate(partition) for op in c.ops}
        quotient = nx.DiGraph()
        quotient.add_nodes_from(range(len(partition)))
        quotient.add_edges_from((stack_of[u], stack_of[v]) for u, v in space.graph.dag.edges
                                if stack_of[u] != stack_of[v])
        try:
            cycle = nx.find_cycle(quotient)
        except nx.NetworkXNoCycle:
            return partition
        largest = max((u for u, _ in cycle), key=lambda i: len(partition[i].ops))
        broken = partition.pop(largest)
        partition.extend(space.singles[op] for op in broken.ops)


def layer_by_layer(space: FusionSpace) -> list[Candidate]:
    return list(space.singles.values())


def start_partition(space: FusionSpace) -> list[Candidate]:
    """The space's `start` partition made valid (`repair`), or layer by layer when it has none."""
    return repair(space, space.start) if space.start else layer_by_layer(space)


def rule_partition(space: FusionSpace) -> list[Candidate]:
    """The fixed rule (module docstring)."""
    graph = space.graph
    validate = _Validator(space)
    position = validate.position
    assigned: set[str] = set()
    blocks: list[list[str]] = []
    for op in graph.ops:
        if op.name in assigned:
            continue
        block = [op.name]
        if op.kind in MAC_KINDS:
            last = op
            while len(block) < space.max_stack:
                followers = sorted((c for t in last.outputs for c in graph.consumers[t]
                                    if c not in assigned and c not in block
                                    and graph.op_by_name[c].kind in FOLLOWERS), key=position.__getitem__)
                if not followers or validate([*block, followers[0]]) is None:
                    break
                block.append(followers[0])
                last = graph.op_by_name[followers[0]]
        assigned.update(block)
        blocks.append(block)
    return repair(space, blocks, validate)


def run_fusion_ga(space: FusionSpace, config: GAConfig, deadline: Deadline) -> list[Candidate]:
    """NSGA-II (module docstring); the best partition it evaluated by the space's objective."""
    edges = list(space.graph.dag.edges)
    validate = _Validator(space)
    decoded: dict[tuple[int, ...], list[Candidate]] = {}

    def decode(genome: tuple[int, ...]) -> list[Candidate]:
        if genome not in decoded:
            fused = nx.Graph()
            fused.add_nodes_from(op.name for op in space.graph.ops)
            fused.add_edges_from(e for e, gene in zip(edges, genome, strict=True) if gene)
            decoded[genome] = repair(space, [sorted(c) for c in nx.connected_components(fused)], validate)
        return decoded[genome]

    def evaluate(genome: tuple[int, ...]) -> tuple[float, float]:
        partition = decode(genome)
        return float(sum(c.latency_cycles for c in partition)), sum(c.energy_pj for c in partition)

    block_of = {op: i for i, block in enumerate(space.start) for op in block}
    initial = [tuple(int(block_of[u] == block_of[v]) for u, v in edges)] if space.start else []
    seen = nsga2_search([2] * len(edges), evaluate, config, deadline, initial)
    return decode(min(seen, key=lambda g: (space.value(decode(g)), seen[g])))
