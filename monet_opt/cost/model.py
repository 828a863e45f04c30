"""The analytical cost model: latency (cycles) and energy (pJ) of an op, or a fused stack of ops, on a core.

`price(graph, ops, core, hw, on_chip)` is the one function that computes them. For one op:

Compute (PE array; matmul dims renamed N->K, K->C, M->OX onto the conv names, conv uses C/G):
    temporal_cycles = prod_{d unrolled} ceil(D_d / U_d) * prod_{d not unrolled} D_d
    spatial utilisation = MACs / (temporal_cycles * prod_d U_d)
    fill_drain_cycles = sum_d U_d          (the systolic wavefront enters and leaves once per op)
Compute (vector unit): cycles = ceil(work / lanes), work = vector ops (or MACs); no fill/drain.

Local-memory traffic (bits), PE array: the *stationary* operand is the one indexed by every unrolled
dim (weight-stationary K x C: W; output-stationary OX x K: the output); among several, the largest.
It moves once (read once, or for the output written once). Every other input is read once per
temporal cycle per distinct index the array touches: temporal_cycles * prod_{d unrolled, d relevant
to it} min(U_d, D_d) elements; a non-stationary output is read and written that often (partial sums). Vector
units read every input and write every output once. Data arriving from DRAM is also written into
local memory, data leaving to DRAM is read from it.

DRAM traffic (bytes). Operands in `on_chip` are already in (or stay in) the core's memory and move
no DRAM bytes; all others (including weights, gradients and optimizer states) live in DRAM. If all
operands fit in the core's share M of its local memory (the capacity divided by the number of
cores sharing that memory), each moves once (compulsory traffic). If not, a MAC op tiles: one
operand X stays resident in n_X = ceil(S_X / (M/2)) chunks while the others stream past each chunk
(chunks split a non-reduction dimension, so outputs complete in place and are written once):

    reads = min(S_B + n_B * S_A,                                  (B resident)
                S_A + n_A * S_B,                                  (A resident)
                min(S_A + n_O * S_B, S_B + n_O * S_A))            (output resident)

(minus the compulsory bytes of on-chip inputs); `tiles` reports the chosen n. Vector ops stream
(each element is touched once), so they never re-fetch.

    local_cycles = ceil(local bits / memory bandwidth)
    dram_cycles  = ceil(DRAM bytes * 8 / min(DRAM port, DRAM link bandwidth))
    latency_cycles = max(compute_cycles, local_cycles, dram_cycles) + fill_drain_cycles

    energy_pj = compute (MACs * mac_energy_pj, or vector ops * op_energy_pj)
              + local read bits * read_pj_per_bit + local write bits * write_pj_per_bit
              + DRAM bits * (dram energy_pj_per_bit + DRAM link energy_pj_per_bit)

A fused stack runs tile by tile on one core: tensors produced and consumed only inside it never
leave the core (no DRAM traffic); its tile count n is the smallest with
weights + ceil(activations / n) <= M, at most the fewest rows (outer iterations) of any of its
ops; if even that does not fit, the fusion is infeasible. Its compute, fill/drain (once per tile
per op) and local traffic add up over its ops; its DRAM traffic is its external inputs and outputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from monet_opt.hardware.model import DRAM, Accelerator, Core
from monet_opt.workload.ir import MAC_KINDS, Graph, Op, OpKind, Tensor


@dataclass(frozen=True)
class Cost:
    """Price of one op or fused stack on one core (see the module docstring for every formula)."""

    core: str
    compute_cycles: int
    fill_drain_cycles: int
    local_cycles: int
    dram_cycles: int
    latency_cycles: int
    local_read_bits: int
    local_write_bits: int
    dram_read_bytes: int
    dram_write_bytes: int
    compute_energy_pj: float
    local_energy_pj: float
    dram_energy_pj: float
    dram_link_energy_pj: float
    working_set_bytes: int
    tiles: int
    utilisation: float

    @property
    def energy_pj(self) -> float:
        return self.compute_energy_pj + self.local_energy_pj + self.dram_energy_pj + self.dram_link_energy_pj

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


@dataclass(frozen=True)
class Unavailable:
    """An (op or stack, core) pair that has no price, and why (ineligible core, fusion that does not fit)."""

    reason: str


_MATMUL_AS_CONV = {"B": "B", "N": "K", "K": "C", "M": "OX"}

# Loop dims (conv names) that index each operand: (first input, second input, output).
_CONV_OPERANDS = {
    OpKind.CONV: ({"B", "C", "OY", "OX", "FY", "FX"}, {"K", "C", "FY", "FX"}, {"B", "K", "OY", "OX"}),
    OpKind.CONV_DX: ({"B", "K", "OY", "OX"}, {"K", "C", "FY", "FX"}, {"B", "C", "OY", "OX", "FY", "FX"}),
    OpKind.CONV_DW: ({"B", "C", "OY", "OX", "FY", "FX"}, {"B", "K", "OY", "OX"}, {"K", "C", "FY", "FX"}),
}


def conv_loop_dims(op: Op) -> dict[str, int]:
    """The op's MAC loop nest under conv dimension names (C per group for grouped convs)."""
    d = op.dims
    if op.kind is OpKind.MATMUL:
        return {"B": d["B"], "K": d["N"], "C": d["K"], "OX": d["M"], "OY": 1, "FY": 1, "FX": 1}
    return {"B": d["B"], "K": d["K"], "C": d["C"] // d["G"], "OY": d["OY"], "OX": d["OX"], "FY": d["FY"], "FX": d["FX"]}


def operand_dims(op: Op) -> tuple[set[str], set[str], set[str]]:
    """Loop dims (conv names) indexing the first input, the second input and the output of a MAC op."""
    if op.kind is OpKind.MATMUL:
        second = {"C", "K"} | ({"B"} if op.attrs.get("B_BATCHED") else set())
        return {"B", "OX", "C"}, second, {"B", "OX", "K"}
    return _CONV_OPERANDS[op.kind]


def op_rows(op: Op) -> int:
    """Outer iterations a fused stack can tile this op into (rows of its output or input)."""
    d = op.dims
    if op.kind in MAC_KINDS:
        return d["B"] * (d["M"] if op.kind is OpKind.MATMUL else d["OY"])
    for key in ("OY", "R", "T", "N"):
        if key in d:
            return d.get("B", 1) * d[key] if key == "OY" else d[key]
    return 1


@dataclass(frozen=True)
class _CoreWork:
    compute_cycles: int
    fill_drain_cycles: int
    read_bits: int
    write_bits: int
    compute_energy_pj: float
    utilisation: float


def _core_work(graph: Graph, op: Op, core: Core) -> _CoreWork:
    """Compute cycles, fill/drain and local-memory traffic of one op on one core (no DRAM)."""
    tensors = graph.tensors
    inputs = [tensors[t] for t in dict.fromkeys(op.inputs + op.updates)]
    outputs = [tensors[t] for t in op.outputs + op.updates]
    if core.is_pe_array:
        loops = conv_loop_dims(op)
        unroll = core.unroll
        temporal = math.prod(math.ceil(loops[d] / lanes) for d, lanes in unroll.items()) * math.prod(
            size for d, size in loops.items() if d not in unroll
        )
        first, second, out = operand_dims(op)
        a, b, o = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
        candidates = [(x, dims) for x, dims in ((b, second), (o, out), (a, first)) if set(unroll) <= dims]
        stationary = max(candidates, key=lambda c: c[0].size_bytes)[0] if candidates else None

        def per_cycle(dims: set[str]) -> int:
            return math.prod(min(lanes, loops[d]) for d, lanes in unroll.items() if d in dims)

        read_bits = write_bits = 0
        for x, dims in ((a, first), (b, second)):
            bits = x.dtype.size_bytes * 8
            read_bits += x.size_bytes * 8 if x is stationary else temporal * per_cycle(dims) * bits
        extra = [t for t in inputs[2:] if t.name not in (a.name, b.name)]  # bias: read once
        read_bits += sum(t.size_bytes * 8 for t in extra)
        if o is stationary:
            write_bits += o.size_bytes * 8
        else:
            psum = temporal * per_cycle(out) * o.dtype.size_bytes * 8
            read_bits += psum
            write_bits += psum
        write_bits += sum(t.size_bytes * 8 for t in outputs[1:])  # bias gradient
        macs = op.macs
        return _CoreWork(temporal, sum(unroll.values()), read_bits, write_bits, macs * core.mac_energy_pj,
                         macs / (temporal * core.lanes))
    work = op.macs if op.kind in MAC_KINDS else op.vector_ops
    cycles = max(1, math.ceil(work / core.vector_lanes))
    return _CoreWork(
        cycles, 0, sum(t.size_bytes * 8 for t in inputs), sum(t.size_bytes * 8 for t in outputs),
        work * core.vector_op_energy_pj, work / (cycles * core.vector_lanes),
    )


def _distinct(tensors: Iterable[Tensor]) -> list[Tensor]:
    return list({t.name: t for t in tensors}.values())


def price(graph: Graph, ops: Sequence[Op], core: Core, hw: Accelerator,
          on_chip: frozenset[str] = frozenset(), limits_bytes: Mapping[str, int] | None = None) -> Cost | Unavailable:
    """Latency and energy of `ops` (one op, or a fused stack in execution order) on `core`.

    `on_chip` names tensors that are already in, or stay in, the core's local memory (no DRAM bytes).
    `limits_bytes`: memory budgets below the capacities; the core then tiles to fit its budget.
    Returns Unavailable when the core cannot run one of the ops or a fused stack does not fit.
    """
    for op in ops:
        if not core.can_run(op.kind):
            return Unavailable(f"core {core.name!r} cannot run {op.kind.value} (op {op.name!r})")
    memory = hw.memories[core.memory]
    capacity = hw.working_capacity_bytes(core.name, limits_bytes)
    works = [_core_work(graph, op, core) for op in ops]
    if len(ops) == 1:
        op = ops[0]
        reads = _distinct(graph.tensors[t] for t in op.inputs + op.updates)
        writes = _distinct(graph.tensors[t] for t in op.outputs + op.updates)
        total = sum(t.size_bytes for t in reads) + sum(t.size_bytes for t in writes)
        off_chip_reads = sum(t.size_bytes for t in reads if t.name not in on_chip)
        dram_write = sum(t.size_bytes for t in writes if t.name not in on_chip)
        tiles = 1
        dram_read = off_chip_reads
        if total > capacity and op.kind in MAC_KINDS and core.is_pe_array:
            s_a = graph.tensors[op.inputs[0]].size_bytes
            s_b = sum(t.size_bytes for t in reads) - s_a
            s_o = sum(t.size_bytes for t in writes)
            half = max(capacity // 2, 1)
            n_a, n_b, n_o = (math.ceil(x / half) for x in (s_a, s_b, s_o))
            tiled, tiles = min(
                (s_b + n_b * s_a, n_b), (s_a + n_a * s_b, n_a), (s_a + n_o * s_b, n_o), (s_b + n_o * s_a, n_o)
            )
            on_chip_reads = sum(t.size_bytes for t in reads if t.name in on_chip)
            dram_read = max(tiled - on_chip_reads, off_chip_reads)
        working_set = min(sum(t.size_bytes for t in reads + writes if t.name not in on_chip), capacity)
    else:
        produced = {t for op in ops for t in op.outputs}
        members = {op.name for op in ops}
        internal = {
            t for t in produced
            if graph.consumers[t] and all(c in members for c in graph.consumers[t]) and t not in graph.outputs
        }
        ext_in = _distinct(graph.tensors[t] for op in ops for t in op.inputs + op.updates if t not in produced)
        ext_out = _distinct(graph.tensors[t] for op in ops for t in op.outputs + op.updates if t not in internal)
        static = sum(t.size_bytes for t in ext_in if t.is_static)
        dynamic = sum(t.size_bytes for t in ext_in if not t.is_static) + sum(
            graph.tensors[t].size_bytes for t in produced)
        max_tiles = min(op_rows(op) for op in ops)
        if static + math.ceil(dynamic / max_tiles) > capacity:
            return Unavailable(
                f"fused stack {ops[0].name!r}..{ops[-1].name!r} needs {static + math.ceil(dynamic / max_tiles)} bytes "
                f"per tile at {max_tiles} tiles, more than {core.memory!r} holds ({capacity})"
            )
        tiles = 1
        if static + dynamic > capacity:
            tiles = max(1, math.ceil(dynamic / (capacity - static)))
            while static + math.ceil(dynamic / tiles) > capacity:
                tiles += 1
        dram_read = sum(t.size_bytes for t in ext_in if t.name not in on_chip)
        dram_write = sum(t.size_bytes for t in ext_out if t.name not in on_chip)
        working_set = static + math.ceil(dynamic / tiles)
    compute = sum(w.compute_cycles for w in works)
    fill = tiles * sum(w.fill_drain_cycles for w in works) if len(ops) > 1 else works[0].fill_drain_cycles
    read_bits = sum(w.read_bits for w in works) + dram_write * 8
    write_bits = sum(w.write_bits for w in works) + dram_read * 8
    local_cycles = math.ceil((read_bits + write_bits) / memory.bandwidth_bits_per_cycle)
    dram_bits = (dram_read + dram_write) * 8
    dram_cycles = math.ceil(dram_bits / hw.dram_bandwidth_bits_per_cycle(core.name))
    link = hw.link_between(DRAM, core.name)
    padded = sum(w.compute_cycles * core.lanes * w.utilisation for w in works)
    return Cost(
        core=core.name,
        compute_cycles=compute,
        fill_drain_cycles=fill,
        local_cycles=local_cycles,
        dram_cycles=dram_cycles,
        latency_cycles=max(compute, local_cycles, dram_cycles) + fill,
        local_read_bits=read_bits,
        local_write_bits=write_bits,
        dram_read_bytes=dram_read,
        dram_write_bytes=dram_write,
        compute_energy_pj=sum(w.compute_energy_pj for w in works),
        local_energy_pj=read_bits * memory.read_energy_pj_per_bit + write_bits * memory.write_energy_pj_per_bit,
        dram_energy_pj=dram_bits * hw.dram.energy_pj_per_bit,
        dram_link_energy_pj=dram_bits * link.energy_pj_per_bit,
        working_set_bytes=working_set,
        tiles=tiles,
        utilisation=padded / (compute * core.lanes) if compute else 0.0,
    )


class CostTable:
    """Memoised prices for one graph on one accelerator, keyed by (ops, core, on-chip operands).

    `all_ops()` prices every (op, core) pair at once; the simulator and the optimisers then look
    prices up instead of recomputing them.
    """

    def __init__(self, graph: Graph, hw: Accelerator, limits_bytes: Mapping[str, int] | None = None) -> None:
        self.graph = graph
        self.hw = hw
        self.limits_bytes = dict(limits_bytes or {})  # memory -> budget below its capacity (see `price`)
        self._cores = {c.name: c for c in hw.cores}
        self._cache: dict[tuple[tuple[str, ...], str, frozenset[str]], Cost | Unavailable] = {}

    def get(self, ops: tuple[str, ...], core: str, on_chip: frozenset[str] = frozenset()) -> Cost | Unavailable:
        key = (ops, core, on_chip)
        found = self._cache.get(key)
        if found is None:
            found = price(self.graph, [self.graph.op_by_name[o] for o in ops], self._cores[core], self.hw, on_chip,
                          self.limits_bytes)
            self._cache[key] = found
        return found

    def all_ops(self) -> dict[tuple[str, str], Cost | Unavailable]:
        """Price of every single op on every core."""
        return {(op.name, c): self.get((op.name,), c) for op in self.graph.ops for c in self._cores}

    def eligible_cores(self, ops: tuple[str, ...]) -> list[str]:
        return [c for c in self._cores if isinstance(self.get(ops, c), Cost)]
