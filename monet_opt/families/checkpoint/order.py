"""The execution order of a training graph as a checkpointing decision (formulations/checkpointing.md,
section 7).

A checkpoint plan runs the ops one at a time in the graph's reference order (`derive_training_graph`:
forward ops in model order, each backward op's data gradient before its weight gradient, updates at
the end or right after each gradient is complete). Any other order that respects the data
dependencies, the in-place updates (every reader of a weight or optimizer state runs before the
op that updates it) and the update placement (with updates at the end, every update runs after the
last forward and backward op) is a valid training step, and it changes which values are live
together, hence what must be recomputed under a budget.

The orders considered:
- every such order, when the graph has at most MAX_ENUMERATED_ORDERS of them (then the search is
  exact over all orders);
- otherwise the reference order and two list schedules: `frees_first` (the reference order, except
  that an op whose run frees at least as many bytes as it allocates runs as soon as it is ready:
  weight gradients before data gradients, updates in the backward pass right after their
  gradient) and `least_memory` (always the ready op with the least net allocation, ties in the
  reference order; Sethi-Ullman-like, myopic).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import networkx as nx

from monet_opt.errors import InputError
from monet_opt.model.training.memory import check_order
from monet_opt.model.workload.ir import Graph, Phase

MAX_ENUMERATED_ORDERS = 24
"""Up to this many valid orders the free-order search solves every one (and may prove optimality
over all orders); above it, the named candidate orders only."""


def reorder(graph: Graph, order: Sequence[str]) -> Graph:
    """The same training graph with its ops in `order` (InputError when `order` breaks a dependency)."""
    dependencies = order_dependencies(graph)
    position = {name: k for k, name in enumerate(check_order(graph, order))}
    for u, v in dependencies.edges:
        if position[u] > position[v]:
            raise InputError(f"{graph.name}: the order runs {v!r} before {u!r}, which it depends on "
                             "(data, an in-place update, or updates at the end of the step)")
    return replace(graph, ops=tuple(graph.op_by_name[name] for name in order))


def pinned_updates(graph: Graph) -> tuple[str, ...]:
    """Updates that read a static gradient (updates at the end of the step), in reference order:
    they run after every other op."""
    return tuple(op.name for op in graph.ops if op.phase is Phase.OPTIMIZER
                 and all(graph.tensors[t].is_static for t in op.inputs))


def order_dependencies(graph: Graph) -> nx.DiGraph:
    """The op DAG every valid order respects: data edges, reader -> in-place updater of the same
    tensor, and every op that is not a pinned update -> the first pinned update, which are chained
    in reference order."""
    dag = nx.DiGraph(graph.dag)
    for op in graph.ops:
        for t in op.updates:
            dag.add_edges_from((reader, op.name) for reader in graph.consumers[t] if reader != op.name)
    pinned = pinned_updates(graph)
    if pinned:
        dag.add_edges_from((op.name, pinned[0]) for op in graph.ops if op.name not in pinned)
        dag.add_edges_from(itertools.pairwise(pinned))
    return dag


def enumerate_orders(graph: Graph, limit: int = MAX_ENUMERATED_ORDERS) -> list[tuple[str, ...]] | None:
    """Every valid order, the reference order first, or None when there are more than `limit`."""
    dag = order_dependencies(graph)
    orders = []
    for order in nx.all_topological_sorts(dag):
        orders.append(tuple(order))
        if len(orders) > limit:
            return None
    reference = tuple(op.name for op in graph.ops)
    return [reference] + sorted(o for o in orders if o != reference)


def _list_schedule(graph: Graph, priority: Callable[[str, int], tuple]) -> tuple[str, ...]:
    """A list schedule over `order_dependencies`: repeatedly run the ready op of least
    priority(op, net allocation in bytes), where the net allocation is the bytes of the dynamic
    values it writes minus those of the dynamic values it reads for the last time."""
    dag = order_dependencies(graph)
    waiting = {v: dag.in_degree(v) for v in dag}
    readers_left = {t: len(readers) for t, readers in graph.consumers.items()}
    ready = {v for v, d in waiting.items() if d == 0}
    order = []

    def net_bytes(name: str) -> int:
        op = graph.op_by_name[name]
        written = sum(graph.tensors[t].size_bytes for t in op.outputs if not graph.tensors[t].is_static)
        freed = sum(graph.tensors[t].size_bytes for t in dict.fromkeys(op.inputs + op.updates)
                    if readers_left[t] == 1 and not graph.tensors[t].is_static and t not in graph.outputs)
        return written - freed

    while ready:
        name = min(ready, key=lambda v: priority(v, net_bytes(v)))
        ready.remove(name)
        order.append(name)
        op = graph.op_by_name[name]
        for t in dict.fromkeys(op.inputs + op.updates):
            readers_left[t] -= 1
        for successor in dag.successors(name):
            waiting[successor] -= 1
            if waiting[successor] == 0:
                ready.add(successor)
    return tuple(order)


@dataclass(frozen=True)
class OrderCandidates:
    """The orders the free-order search solves, (name, op order) each, the reference order first;
    `exhaustive`: they are every valid order."""

    orders: tuple[tuple[str, tuple[str, ...]], ...]
    exhaustive: bool


def candidate_orders(graph: Graph) -> OrderCandidates:
    """Every valid order when there are at most MAX_ENUMERATED_ORDERS (named "reference",
    "order-2", "order-3", ...), else the reference order, `frees_first` and `least_memory` (the
    module docstring), duplicates dropped."""
    every = enumerate_orders(graph)
    if every is not None:
        return OrderCandidates(tuple(("reference" if k == 0 else f"order-{k + 1}", order)
                                     for k, order in enumerate(every)), True)
    position = {op.name: k for k, op in enumerate(graph.ops)}
    candidates = [("reference", tuple(op.name for op in graph.ops)),
                  ("frees_first", _list_schedule(graph, lambda v, net: (net > 0, position[v]))),
                  ("least_memory", _list_schedule(graph, lambda v, net: (net, position[v])))]
    seen: set[tuple[str, ...]] = set()
    out = []
    for name, order in candidates:
        if order not in seen:
            seen.add(order)
            out.append((name, order))
    return OrderCandidates(tuple(out), False)
