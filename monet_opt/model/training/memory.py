"""Memory accounting of a (training) graph executed op by op in a given order.

Liveness rule (store-all: nothing is recomputed or offloaded): a static tensor (weights, weight
gradients, optimizer states, master copies, buffers) occupies memory for the whole step. Every
other tensor is allocated at the step of the op that produces it (graph inputs and constants: at
step 0) and freed after the step of its last reader (a value nobody reads is freed after its own
production step). The live bytes at step i are

    live(i) = static_bytes + sum of size_bytes(t) over dynamic t with alloc(t) <= i <= free(t)

so a step counts the values its op reads and the value(s) it writes. The peak is max_i live(i).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from monet_opt.errors import InputError
from monet_opt.model.workload.ir import Graph, TensorRole


@dataclass(frozen=True)
class LiveIntervals:
    """Dynamic tensors with their [alloc_step, free_step] (inclusive) and sizes, for one order."""

    names: tuple[str, ...]
    alloc_step: np.ndarray
    free_step: np.ndarray
    size_bytes: np.ndarray
    order: tuple[str, ...]


@dataclass(frozen=True)
class MemoryReport:
    """Bytes of a training graph: static classes, the saved-for-backward set, and the store-all peak."""

    static_bytes: int
    static_bytes_by_role: Mapping[str, int]
    saved_activation_bytes: int  # activations read by backward ops (the checkpointing decisions)
    saved_input_bytes: int  # network inputs read by backward ops (always kept)
    store_all_peak_bytes: int
    peak_step: int
    peak_op: str | None


def check_order(graph: Graph, order: Sequence[str] | None) -> tuple[str, ...]:
    """Return `order` (default: the graph's reference order) after checking it is a topological
    order of all the graph's ops; InputError otherwise."""
    if order is None:
        return tuple(op.name for op in graph.ops)
    order = tuple(order)
    if sorted(order) != sorted(op.name for op in graph.ops):
        missing = set(graph.op_by_name) - set(order)
        extra = set(order) - set(graph.op_by_name)
        raise InputError(
            f"{graph.name}: order is not a permutation of the ops (missing {sorted(missing)[:3]}, unknown {sorted(extra)[:3]})"
        )
    position = {name: i for i, name in enumerate(order)}
    for u, v in graph.dag.edges:
        if position[u] > position[v]:
            raise InputError(f"{graph.name}: order runs {v!r} before its producer {u!r}")
    return order


def live_intervals(graph: Graph, order: Sequence[str] | None = None) -> LiveIntervals:
    """Allocation and free steps of every dynamic tensor under the module's liveness rule."""
    order = check_order(graph, order)
    position = {name: i for i, name in enumerate(order)}
    names, alloc, free, size = [], [], [], []
    for name, tensor in graph.tensors.items():
        if tensor.is_static:
            continue
        producer = graph.producer.get(name)
        start = position[producer] if producer is not None else 0
        readers = graph.consumers[name]
        end = max((position[r] for r in readers), default=start)
        names.append(name)
        alloc.append(start)
        free.append(max(end, start))
        size.append(tensor.size_bytes)
    return LiveIntervals(
        tuple(names),
        np.asarray(alloc, dtype=np.int64),
        np.asarray(free, dtype=np.int64),
        np.asarray(size, dtype=np.int64),
        order,
    )


def static_bytes(graph: Graph) -> int:
    return sum(t.size_bytes for t in graph.tensors.values() if t.is_static)


def memory_curve(graph: Graph, order: Sequence[str] | None = None) -> np.ndarray:
    """Live bytes at each step of `order` (static included), by a difference array over the intervals."""
    iv = live_intervals(graph, order)
    delta = np.zeros(len(iv.order) + 1, dtype=np.int64)
    np.add.at(delta, iv.alloc_step, iv.size_bytes)
    np.add.at(delta, iv.free_step + 1, -iv.size_bytes)
    return np.cumsum(delta[:-1]) + static_bytes(graph)


def memory_report(graph: Graph, order: Sequence[str] | None = None) -> MemoryReport:
    """Static bytes by role, saved-for-backward bytes, and the store-all peak in `order`."""
    by_role: dict[str, int] = {}
    for t in graph.tensors.values():
        if t.is_static:
            by_role[t.role.value] = by_role.get(t.role.value, 0) + t.size_bytes
    saved = [graph.tensors[t] for t in graph.saved_for_backward]
    curve = memory_curve(graph, order)
    order = check_order(graph, order)
    peak_step = int(np.argmax(curve)) if len(curve) else 0
    return MemoryReport(
        static_bytes=sum(by_role.values()),
        static_bytes_by_role=by_role,
        saved_activation_bytes=sum(t.size_bytes for t in saved if t.role is TensorRole.ACTIVATION),
        saved_input_bytes=sum(t.size_bytes for t in saved if t.role is TensorRole.INPUT),
        store_all_peak_bytes=int(curve.max()) if len(curve) else static_bytes(graph),
        peak_step=peak_step,
        peak_op=order[peak_step] if order else None,
    )
