"""The graph IR: tensors, ops with their loop dimensions, and the graph that holds them.

Every op is a loop nest over named dimensions (`Op.dims`), so a cost model can price forward and
backward ops alike. Dimension names per op kind:

============================  ===========================================================
kind                          dims (and integer attrs)
============================  ===========================================================
conv, conv_dx, conv_dw        B, K, C, OY, OX, FY, FX, G; attrs SY, SX (stride), PY, PX
                              (padding top/left), DY, DX (dilation), IY, IX (input size).
                              The three share one iteration space; they differ in which
                              operand is the output (Y[b,k,oy,ox], dX[b,c,iy,ix], dW[k,c,fy,fx]).
matmul                        B, M, N, K: Y[b,m,n] = sum_k A[b,m,k] * W[(b),k,n];
                              attr B_BATCHED = 1 when the second operand has the batch dim.
maxpool, avgpool (+backward)  B, C, OY, OX, FY, FX; attrs SY, SX, PY, PX, IY, IX
batchnorm (+backward)         N (elements per channel = B*OY*OX), C
layernorm, softmax,
softmax_xent (+backward)      R (rows), N (normalised / class dimension)
embedding (+backward)         T (looked-up tokens), D (row width), V (table rows)
elementwise, concat, split,
reduce_sum, optimizer ops     N (elements written; reduce_sum: elements read), R (reduce_sum:
                              elements written)
============================  ===========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import networkx as nx

from monet_opt.errors import InputError


class DType(StrEnum):
    """Element type of a tensor; `size_bytes` is its storage size, `bits` its width."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8_E4M3 = "fp8-e4m3"
    FP8_E5M2 = "fp8-e5m2"
    INT64 = "int64"
    INT32 = "int32"
    INT16 = "int16"
    INT8 = "int8"

    @property
    def size_bytes(self) -> int:
        return _DTYPE_BYTES[self]

    @property
    def bits(self) -> int:
        return 8 * _DTYPE_BYTES[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.FP32, DType.BF16, DType.FP16, DType.FP8_E4M3, DType.FP8_E5M2)


_DTYPE_BYTES = {
    DType.FP32: 4,
    DType.BF16: 2,
    DType.FP16: 2,
    DType.FP8_E4M3: 1,
    DType.FP8_E5M2: 1,
    DType.INT64: 8,
    DType.INT32: 4,
    DType.INT16: 2,
    DType.INT8: 1,
}


class TensorRole(StrEnum):
    """What a tensor is for; decides its memory class and its precision."""

    INPUT = "input"  # network input data, labels and constant indices: loaded, never recomputed
    ACTIVATION = "activation"  # produced by a forward op
    WEIGHT = "weight"  # trainable parameter
    BUFFER = "buffer"  # non-trainable state kept across steps (batch-norm running statistics)
    GRADIENT = "gradient"  # transient gradient (of an activation, or a partial weight gradient)
    WEIGHT_GRAD = "weight_grad"  # the accumulated gradient of one weight, read by its update
    OPTIMIZER_STATE = "optimizer_state"  # momentum, Adam first/second moments
    MASTER_WEIGHT = "master_weight"  # full-precision copy of a low-precision weight


STATIC_ROLES = frozenset(
    {
        TensorRole.WEIGHT,
        TensorRole.BUFFER,
        TensorRole.WEIGHT_GRAD,
        TensorRole.OPTIMIZER_STATE,
        TensorRole.MASTER_WEIGHT,
    }
)
"""Roles that occupy memory for the whole training step; all others live from production to last use."""


class Phase(StrEnum):
    FORWARD = "forward"
    BACKWARD = "backward"
    OPTIMIZER = "optimizer"
    RECOMPUTE = "recompute"  # a forward op executed again to rematerialise a checkpointed value


class OpKind(StrEnum):
    # forward (and reused by backward where the loop nest is the same)
    CONV = "conv"
    MATMUL = "matmul"
    ADD = "add"
    MUL = "mul"
    RELU = "relu"
    GELU = "gelu"
    MAXPOOL = "maxpool"
    AVGPOOL = "avgpool"
    BATCHNORM = "batchnorm"
    LAYERNORM = "layernorm"
    SOFTMAX = "softmax"
    EMBEDDING = "embedding"
    CONCAT = "concat"
    SOFTMAX_XENT = "softmax_xent"
    # backward
    CONV_DX = "conv_dx"
    CONV_DW = "conv_dw"
    RELU_BACKWARD = "relu_backward"
    GELU_BACKWARD = "gelu_backward"
    MAXPOOL_BACKWARD = "maxpool_backward"
    AVGPOOL_BACKWARD = "avgpool_backward"
    BATCHNORM_BACKWARD = "batchnorm_backward"
    LAYERNORM_BACKWARD = "layernorm_backward"
    SOFTMAX_BACKWARD = "softmax_backward"
    EMBEDDING_BACKWARD = "embedding_backward"
    SPLIT = "split"
    REDUCE_SUM = "reduce_sum"
    SOFTMAX_XENT_BACKWARD = "softmax_xent_backward"
    # optimizer
    SGD_UPDATE = "sgd_update"
    MOMENTUM_UPDATE = "momentum_update"
    ADAM_UPDATE = "adam_update"
    ADAMW_UPDATE = "adamw_update"


MAC_KINDS = frozenset({OpKind.CONV, OpKind.CONV_DX, OpKind.CONV_DW, OpKind.MATMUL})
"""Kinds whose work is multiply-accumulates (run on PE arrays); all others are vector work."""

VECTOR_OPS_PER_ELEMENT: Mapping[OpKind, int] = {
    OpKind.ADD: 1,
    OpKind.MUL: 1,
    OpKind.RELU: 1,
    OpKind.RELU_BACKWARD: 1,  # dX = dY where Y > 0
    OpKind.GELU: 8,  # tanh approximation: cube, 2 mul, 2 add, tanh, mul, mul
    OpKind.GELU_BACKWARD: 14,  # derivative of the tanh approximation, times dY
    OpKind.BATCHNORM: 5,  # sum, sum of squares, normalise (sub, mul), scale-shift
    OpKind.BATCHNORM_BACKWARD: 7,  # two reductions (dgamma, dbeta) and the dX expression
    OpKind.LAYERNORM: 5,
    OpKind.LAYERNORM_BACKWARD: 7,
    OpKind.SOFTMAX: 4,  # max, sub-exp, sum, divide
    OpKind.SOFTMAX_BACKWARD: 3,  # dot(dY, Y) per row, sub, mul
    OpKind.SOFTMAX_XENT: 5,  # softmax (4) + pick-and-log of the label column
    OpKind.SOFTMAX_XENT_BACKWARD: 5,  # recompute softmax (4), subtract one-hot
    OpKind.EMBEDDING: 1,  # copy a row element
    OpKind.EMBEDDING_BACKWARD: 1,  # scatter-add a row element
    OpKind.CONCAT: 1,
    OpKind.SPLIT: 1,
    OpKind.REDUCE_SUM: 1,
    OpKind.MAXPOOL: 1,  # one compare per window element
    OpKind.MAXPOOL_BACKWARD: 1,  # one compare per window element against the window maximum
    OpKind.AVGPOOL: 1,
    OpKind.AVGPOOL_BACKWARD: 1,
    OpKind.SGD_UPDATE: 2,  # w -= lr * g
    OpKind.MOMENTUM_UPDATE: 4,  # m = mu*m + g; w -= lr*m
    OpKind.ADAM_UPDATE: 12,  # two moment updates, bias corrections, sqrt, divide, update
    OpKind.ADAMW_UPDATE: 14,  # Adam + decoupled weight decay
}
"""Elementary vector operations per loop iteration, the work measure of non-MAC kinds."""


def count_macs(kind: OpKind, dims: Mapping[str, int]) -> int:
    """Multiply-accumulates of one op.

    conv family: B * K * (C / G) * OY * OX * FY * FX (dX and dW share the forward's iteration space,
    hence its MAC count); matmul: B * M * N * K; every other kind: 0.
    """
    if kind in (OpKind.CONV, OpKind.CONV_DX, OpKind.CONV_DW):
        return (
            dims["B"] * dims["K"] * (dims["C"] // dims["G"]) * dims["OY"] * dims["OX"]
            * dims["FY"] * dims["FX"]
        )
    if kind is OpKind.MATMUL:
        return dims["B"] * dims["M"] * dims["N"] * dims["K"]
    return 0


def count_vector_ops(kind: OpKind, dims: Mapping[str, int]) -> int:
    """Elementary vector operations of a non-MAC op: iterations x VECTOR_OPS_PER_ELEMENT[kind].

    Iterations are the product of the op's loop dims except embedding's V (the table is indexed,
    not scanned) and reduce_sum's R (the output size, already covered by N elements read).
    MAC kinds return 0 (their bias additions are negligible and not counted).
    """
    if kind in MAC_KINDS:
        return 0
    skipped = {"V", "R"} if kind in (OpKind.EMBEDDING, OpKind.EMBEDDING_BACKWARD, OpKind.REDUCE_SUM) else set()
    iterations = math.prod(size for name, size in dims.items() if name not in skipped)
    return iterations * VECTOR_OPS_PER_ELEMENT[kind]


@dataclass(frozen=True)
class Tensor:
    """A value of the graph: its shape, element type and role. `transient`: a tensor of a static
    role that lives from its production to its last use instead (a weight gradient whose update
    runs in the backward pass)."""

    name: str
    shape: tuple[int, ...]
    dtype: DType
    role: TensorRole
    transient: bool = False

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def size_bytes(self) -> int:
        """numel x element size in bytes."""
        return self.numel * self.dtype.size_bytes

    @property
    def is_static(self) -> bool:
        return self.role in STATIC_ROLES and not self.transient


@dataclass(frozen=True)
class Op:
    """One op: a loop nest (`dims`) reading `inputs` and writing `outputs` (tensor names).

    `updates` names tensors the op writes in place (optimizer updates of weights and states);
    `forward_op` names the forward op a backward op is derived from.
    """

    name: str
    kind: OpKind
    phase: Phase
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dims: Mapping[str, int]
    attrs: Mapping[str, int] = field(default_factory=dict)
    updates: tuple[str, ...] = ()
    forward_op: str | None = None

    @property
    def macs(self) -> int:
        return count_macs(self.kind, self.dims)

    @property
    def vector_ops(self) -> int:
        return count_vector_ops(self.kind, self.dims)

    @property
    def work(self) -> int:
        """Multiply-accumulates for MAC kinds, elementary vector operations otherwise: what a core's
        lanes do, one per lane per cycle."""
        return self.macs if self.kind in MAC_KINDS else self.vector_ops


@dataclass(frozen=True)
class Graph:
    """A DAG of ops over tensors; `ops` is in a valid topological (reference execution) order.

    `saved_for_backward` maps each forward value (activation or input) read by a backward op to
    those backward ops: the values that activation checkpointing decides about. It is empty for
    forward-only graphs. `accumulator` is the element type of the partial sums of MAC ops (int32
    for int8 operands, fp32 for bf16 ones); None: each op's output type.
    """

    name: str
    tensors: Mapping[str, Tensor]
    ops: tuple[Op, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    saved_for_backward: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    accumulator: DType | None = None

    def __post_init__(self) -> None:
        validate_graph(self)

    @cached_property
    def producer(self) -> Mapping[str, str]:
        """Tensor name -> name of the op that produces it (graph inputs and static tensors: none)."""
        return {t: op.name for op in self.ops for t in op.outputs}

    @cached_property
    def consumers(self) -> Mapping[str, tuple[str, ...]]:
        """Tensor name -> names of the ops that read it, in execution order."""
        readers: dict[str, list[str]] = {name: [] for name in self.tensors}
        for op in self.ops:
            for t in dict.fromkeys(op.inputs + op.updates):
                readers[t].append(op.name)
        return {name: tuple(ops) for name, ops in readers.items()}

    @cached_property
    def op_by_name(self) -> Mapping[str, Op]:
        return {op.name: op for op in self.ops}

    @cached_property
    def dag(self) -> nx.DiGraph:
        """Op-level DAG: an edge u -> v carries every tensor u writes and v reads (attr `tensors`)."""
        g = nx.DiGraph()
        g.add_nodes_from(op.name for op in self.ops)
        for op in self.ops:
            for t in op.inputs:
                src = self.producer.get(t)
                if src is None:
                    continue
                if g.has_edge(src, op.name):
                    g.edges[src, op.name]["tensors"].append(t)
                else:
                    g.add_edge(src, op.name, tensors=[t])
        return g

    def read_bytes(self, op: Op) -> int:
        """Bytes of the distinct tensors `op` reads (inputs and tensors it updates in place)."""
        return sum(self.tensors[t].size_bytes for t in dict.fromkeys(op.inputs + op.updates))

    def write_bytes(self, op: Op) -> int:
        """Bytes `op` writes: its outputs and the tensors it updates in place."""
        return sum(self.tensors[t].size_bytes for t in op.outputs + op.updates)

    def ops_in_phase(self, phase: Phase) -> tuple[Op, ...]:
        return tuple(op for op in self.ops if op.phase is phase)

    @property
    def params(self) -> int:
        """Number of trainable parameters (elements of WEIGHT tensors)."""
        return sum(t.numel for t in self.tensors.values() if t.role is TensorRole.WEIGHT)

    def macs(self, phase: Phase | None = None) -> int:
        """Total multiply-accumulates, of one phase or of all."""
        return sum(op.macs for op in self.ops if phase is None or op.phase is phase)


def validate_graph(graph: Graph) -> None:
    """Check that the graph is well formed; raise InputError naming the first offending op or tensor.

    Rules: unique op names; every dimension and shape entry positive; every op input/update is a
    known tensor; every tensor is produced at most once and never overwrites a graph input or a
    static tensor that no op writes; `ops` is topologically ordered (an input is produced before it is read), which
    also rules out cycles.
    """
    for name, tensor in graph.tensors.items():
        if name != tensor.name:
            raise InputError(f"graph {graph.name!r}: tensor key {name!r} holds tensor {tensor.name!r}")
        if any(d <= 0 for d in tensor.shape):
            raise InputError(f"graph {graph.name!r}: tensor {name!r} has a non-positive dimension {tensor.shape}")
    written = {t for op in graph.ops for t in op.outputs}
    available = set(graph.inputs)
    available.update(
        name for name, t in graph.tensors.items() if (t.is_static or t.role is TensorRole.INPUT) and name not in written
    )
    produced: set[str] = set()
    seen_ops: set[str] = set()
    for op in graph.ops:
        if op.name in seen_ops:
            raise InputError(f"graph {graph.name!r}: op name {op.name!r} is used twice")
        seen_ops.add(op.name)
        for dim, size in op.dims.items():
            if size <= 0:
                raise InputError(f"graph {graph.name!r}: op {op.name!r} has dimension {dim}={size} (must be > 0)")
        for t in op.inputs + op.updates:
            if t not in graph.tensors:
                raise InputError(f"graph {graph.name!r}: op {op.name!r} reads unknown tensor {t!r}")
            if t not in available:
                raise InputError(
                    f"graph {graph.name!r}: op {op.name!r} reads {t!r} before it is produced "
                    "(the graph has a cycle or is not in topological order)"
                )
        for t in op.outputs:
            if t not in graph.tensors:
                raise InputError(f"graph {graph.name!r}: op {op.name!r} writes unknown tensor {t!r}")
            if t in produced or t in available:
                raise InputError(f"graph {graph.name!r}: tensor {t!r} is written twice (op {op.name!r})")
            produced.add(t)
            available.add(t)
    for t in graph.outputs:
        if t not in available:
            raise InputError(f"graph {graph.name!r}: output {t!r} is never produced")


def topological_op_order(names: list[str], reads: Mapping[str, tuple[str, ...]], writes: Mapping[str, tuple[str, ...]]) -> list[str]:
    """Order op names so that every op follows the producers of what it reads.

    Stable (keeps the given order where dependencies allow). Raises InputError naming the ops on a
    cycle when there is one.
    """
    producer = {t: n for n in names for t in writes[n]}
    g = nx.DiGraph()
    g.add_nodes_from(names)
    for n in names:
        for t in reads[n]:
            if t in producer and producer[t] != n:
                g.add_edge(producer[t], n)
            elif producer.get(t) == n:
                raise InputError(f"node {n!r} reads its own output {t!r} (cycle)")
    position = {n: i for i, n in enumerate(names)}
    try:
        return list(nx.lexicographical_topological_sort(g, key=position.__getitem__))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        path = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise InputError(f"the graph has a cycle: {path}") from None
