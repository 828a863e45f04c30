"""The analytical cost model: latency (cycles) and energy (pJ) of an op, or a fused stack of ops, on a core.

`price(graph, ops, core, hw, on_chip)` computes them (`_compose` puts the parts together). For one op:

Compute (PE array; matmul dims renamed N->K, K->C, M->OX onto the conv names, conv uses C/G):
    temporal_cycles = prod_{d unrolled} ceil(D_d / U_d) * prod_{d not unrolled} D_d
    spatial utilisation = MACs / (temporal_cycles * prod_d U_d)
    fill_drain_cycles = sum_d U_d          (the systolic wavefront enters and leaves once per op)
Compute (vector unit): cycles = ceil(work / lanes), work = vector ops (or MACs); no fill/drain.

Local-memory traffic (bits), PE array. Let t_d be the temporal count of loop d (ceil(D_d / U_d)
if unrolled, else D_d), T = prod_d t_d, and for each operand X (ports: input = the op's first
input, weight = its second, output) s_X = prod_{d unrolled, d indexes X} min(U_d, D_d) the
distinct elements of X the array touches per cycle. A register file of X holds r_X =
size_bits // width_X elements per PE. For a temporal loop order (innermost first), X's
register keeps the innermost loops while the elements they touch fit (prod of the t_d of those
loops that index X <= r_X); the loops among them that do not index X reuse what it holds:

    reuse_X   = prod_{d kept, d does not index X} t_d
    fetches_X = T / reuse_X
    input, weight:  local reads = fetches_X * s_X * width_X
    output:         distinct_O = prod_{d indexes O} t_d (each output lane's outputs)
                    partial = (fetches_O - distinct_O) * s_O * accumulator width
                    local reads = partial; local writes = partial + distinct_O * s_O * output width

(a partial sum leaves the register when a loop outside the kept ones moves on, and comes back;
the final value is written once at the output's type). The orders tried put the loops that do not
index one operand innermost, then those that do not index a second (all six priorities); the one
of least local + register energy is kept. Register energy: input and weight registers are read
by every active multiplier each cycle and filled by each fetch (T and fetches_X times the active
lanes, at width_X); output registers are read and written every cycle (T * s_O at the
accumulator width). Every PE holds the stationary operand (the one indexed by every unrolled dim,
the largest among several) in at least one element, its pipeline register (free unless a register
file is declared for that port): weight-stationary reads each weight once, output-stationary
(and a weight gradient on a K x C array) writes each output once. The
accumulator width is the graph's partial-sum type (int32 for int8 operands), or the output's.
Vector units read every input and write every output once. Data arriving from DRAM is also
written into local memory, data leaving to DRAM is read from it.

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

    local_cycles = ceil((read + write bits) / bandwidth)             (one shared port)
                 = max(ceil(read bits / read bandwidth),
                       ceil(write bits / write bandwidth))            (separate ports)
    dram_cycles  = ceil(DRAM bytes * 8 / min(DRAM port, DRAM link bandwidth))
    preload_cycles = 0 on a double-buffered core (loads of the next tile overlap compute), else
                     ceil(ceil(H / tiles) * 8 / that bandwidth), H = the DRAM bytes of the inputs
                     the op reads more than once (held in local memory while it runs; an operand
                     read once streams through): the first tile's operands arrive before compute
    latency_cycles = preload + max(compute_cycles, local_cycles, dram_cycles - preload) + fill_drain_cycles

    energy_pj = compute (MACs * mac_energy_pj(wider operand type), or vector ops * op_energy_pj(type))
              + register energy (PE arrays with register files, above)
              + local read bits * read_pj_per_bit + local write bits * write_pj_per_bit
              + DRAM read bits * DRAM read_energy_pj_per_bit + DRAM write bits * write_energy_pj_per_bit
              + DRAM bits * DRAM link energy_pj_per_bit

A fused stack runs tile by tile: tensors produced and consumed only inside it never go to DRAM;
its DRAM traffic is its external inputs and outputs. Each op runs on its core (one core for the
whole stack, or one per op: a stack may span cores, e.g. a convolution on a PE array and the ReLU
after it on a vector unit). Per local memory m used by the stack, with M_m the working capacity of
the stack's cores on m: static_m = the weights (static external inputs) its ops read, dynamic_m =
the other external inputs its ops read + what they produce + what they receive from another memory;
halo_m = the rows consecutive tiles of its windowed ops share (`halo_bytes`: a 3x3 convolution
with stride 1 keeps 2 input rows from one tile for the next), held from tile to tile when n > 1;
n_fit is the smallest tile count with static_m + halo_m [n > 1] + ceil(dynamic_m / n) <= M_m for
every m, at most the fewest rows (outer iterations) of any op; if even that does not fit, the
fusion is infeasible. (The halo is kept, not recomputed or re-read: no extra compute or traffic.)
A tensor produced on one memory and read on another crosses `link_between(producer core, reader
core)` once (read at the source, written at the destination; no link: infeasible). Fill/drain is
paid once per tile per op. With busy_c the compute cycles of core c summed over its ops:

    latency_cycles = preload + max(max_c busy_c, each memory's local cycles, each DRAM link's cycles
                                   - preload, each core-to-core link's cycles) + ramp + fill/drain
    ramp = ceil((sum_c busy_c - max_c busy_c) / n)   (0 on one core)

the latency of a pipeline of one stage per core over n tiles: the busiest stage runs all n tiles,
the others add one tile each while the pipeline fills and drains. More tiles shorten the ramp and
pay fill/drain more often, and change nothing else (DRAM and link traffic and energy do not depend
on n; the working set only shrinks), so the tile count is decided here, exactly (`best_tile_count`):

    n = argmin over n_fit <= n <= rows of ceil(R / n) + F * n,
        R = sum_c busy_c - max_c busy_c,  F = the stack's fill/drain cycles per tile
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from monet_opt.errors import InputError
from monet_opt.model.hardware.model import DRAM, Accelerator, Core, Link, Memory
from monet_opt.model.workload.ir import MAC_KINDS, DType, Graph, Op, OpKind, Tensor


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
    link_cycles: int = 0  # busiest core-to-core link of a stack that spans cores
    link_energy_pj: float = 0.0  # tiles passed between the cores of such a stack
    cores: tuple[str, ...] = ()  # every core the stack runs on, `core` first (empty: `core` alone)
    working_set_by_memory: tuple[tuple[str, int], ...] = ()  # (memory, bytes) when it spans memories
    energy_by_part: tuple[tuple[str, float], ...] = ()  # ("memory:M" | "link:L", pJ) when it spans memories
    register_energy_pj: float = 0.0  # the PE arrays' register files
    preload_cycles: int = 0  # DRAM loads before compute starts (cores without double buffering)

    @property
    def energy_pj(self) -> float:
        return (self.compute_energy_pj + self.register_energy_pj + self.local_energy_pj + self.dram_energy_pj
                + self.dram_link_energy_pj + self.link_energy_pj)

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


@dataclass(frozen=True)
class Unavailable:
    """An (op or stack, core) pair that has no price, and why (ineligible core, fusion that does not fit)."""

    reason: str


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
    register_energy_pj: float = 0.0
    reread_inputs: tuple[str, ...] = ()  # inputs fetched more than once: held in local memory while it runs


def _core_work(graph: Graph, op: Op, core: Core, memory: Memory) -> _CoreWork:
    """Compute cycles, fill/drain and local-memory traffic of one op on one core (no DRAM); a
    vector operation is priced at the widest type it reads (index types aside)."""
    if core.is_pe_array:
        return _pe_array_work(graph, op, core, memory)
    tensors = graph.tensors
    inputs = [tensors[t] for t in dict.fromkeys(op.inputs + op.updates)]
    outputs = [tensors[t] for t in op.outputs + op.updates]
    work = op.work
    cycles = max(1, math.ceil(work / core.vector_lanes))
    types = [t.dtype for t in inputs if t.dtype not in (DType.INT64, DType.INT32)] or [inputs[0].dtype]
    return _CoreWork(
        cycles, 0, sum(t.size_bytes * 8 for t in inputs), sum(t.size_bytes * 8 for t in outputs),
        work * core.vector_op_energy.pj(max(types, key=lambda d: d.bits)), work / (cycles * core.vector_lanes),
    )


def _pe_array_work(graph: Graph, op: Op, core: Core, memory: Memory) -> _CoreWork:
    """A MAC op on a PE array: compute cycles, fill/drain, the bits it reads and writes in the
    core's local memory and its register energy (module docstring, "Local-memory traffic"), and the
    inputs it fetches more than once. Evaluates the temporal loop orders that favour each operand
    in turn and keeps the one of least energy (then fewest local bits)."""
    tensors = graph.tensors
    loops = conv_loop_dims(op)
    unroll = core.unroll
    counts = {d: math.ceil(size / unroll[d]) if d in unroll else size for d, size in loops.items()}
    temporal = math.prod(counts.values())
    a, b, o = tensors[op.inputs[0]], tensors[op.inputs[1]], tensors[op.outputs[0]]
    first, second, out = operand_dims(op)
    accumulator_bits = max((graph.accumulator or o.dtype).bits, o.dtype.bits)
    ports = {"input": (first, a.dtype.bits), "weight": (second, b.dtype.bits), "output": (out, accumulator_bits)}
    active_lanes = math.prod(min(lanes, loops[d]) for d, lanes in unroll.items())
    spatial = {port: math.prod(min(lanes, loops[d]) for d, lanes in unroll.items() if d in dims)
               for port, (dims, _) in ports.items()}
    distinct = {port: math.prod(counts[d] for d in dims) for port, (dims, _) in ports.items()}  # per lane
    elements = {port: r.size_bits // ports[port][1] for port, r in core.registers.items()}
    stationary = [(x, port) for x, port in ((b, "weight"), (o, "output"), (a, "input")) if set(unroll) <= ports[port][0]]
    if stationary:  # every PE holds the stationary operand (indexed by every unrolled dim) in at least one element
        port = max(stationary, key=lambda c: c[0].size_bytes)[1]
        elements[port] = max(elements.get(port, 0), 1)
    loop_dims = [d for d in counts if counts[d] > 1]
    orders = {tuple(sorted(loop_dims, key=lambda d: tuple(d in ports[p][0] for p in priority)))
              for priority in itertools.permutations(ports)}
    best: tuple[float, int, int, float, tuple[str, ...]] | None = None
    for order in sorted(orders):
        read_bits = write_bits = 0
        register_pj = 0.0
        reread: list[str] = []
        for port, (dims, bits) in ports.items():
            reuse = 1
            if elements.get(port, 0) >= 1:
                footprint = 1
                for d in order:
                    if d in dims:
                        if footprint * counts[d] > elements[port]:
                            break
                        footprint *= counts[d]
                    else:
                        reuse *= counts[d]
            fetches = temporal // reuse
            if port == "output":
                partial = (fetches - distinct[port]) * spatial[port] * bits
                read_bits += partial
                write_bits += partial + distinct[port] * spatial[port] * o.dtype.bits
            else:
                x = a if port == "input" else b
                read_bits += fetches * spatial[port] * x.dtype.bits
                if fetches > distinct[port]:
                    reread.append(x.name)
            if port in core.registers:
                r = core.registers[port]
                if port == "output":  # accumulate: read and write the partial sum every cycle
                    register_pj += temporal * spatial[port] * bits * (r.read_energy_pj_per_bit + r.write_energy_pj_per_bit)
                else:  # every multiplier reads its operand each cycle; each fetch fills every PE's copy
                    register_pj += active_lanes * bits * (temporal * r.read_energy_pj_per_bit
                                                         + fetches * r.write_energy_pj_per_bit)
        energy = read_bits * memory.read_energy_pj_per_bit + write_bits * memory.write_energy_pj_per_bit + register_pj
        if best is None or (energy, read_bits + write_bits) < (best[0], best[1] + best[2]):
            best = (energy, read_bits, write_bits, register_pj, tuple(reread))
    assert best is not None
    _, read_bits, write_bits, register_pj, reread_inputs = best
    extra = [tensors[t] for t in dict.fromkeys(op.inputs[2:] + op.updates) if t not in (a.name, b.name)]  # bias
    read_bits += sum(t.size_bytes * 8 for t in extra)
    write_bits += sum(tensors[t].size_bytes * 8 for t in op.outputs[1:] + op.updates)  # bias gradient
    operand_type = max(a.dtype, b.dtype, key=lambda d: d.bits)
    return _CoreWork(temporal, sum(unroll.values()), read_bits, write_bits,
                     op.macs * core.mac_energy.pj(operand_type), op.macs / (temporal * core.lanes), register_pj,
                     reread_inputs)


def _touched(size: int, outputs: int, kernel: int, stride: int, dilation: int, padding: int) -> int:
    """Input rows (or columns) a convolution reads: those at oy * stride + f * dilation - padding
    for some output oy and kernel tap f, inside the input."""
    return len({o * stride + f * dilation - padding for o in range(outputs) for f in range(kernel)} & set(range(size)))


def read_bytes(graph: Graph, op: Op, tensor: str) -> int:
    """Bytes of `tensor` that `op` reads: the whole tensor, except the input image of a
    convolution or its weight gradient, of which only the pixels under some kernel tap are read
    (a strided 1x1 convolution reads one pixel in stride_y * stride_x)."""
    t = graph.tensors[tensor]
    a = op.attrs
    if op.kind not in (OpKind.CONV, OpKind.CONV_DW) or tensor != op.inputs[0] or "IY" not in a:
        return t.size_bytes
    d = op.dims
    rows = _touched(a["IY"], d["OY"], d["FY"], a["SY"], a["DY"], a["PY"])
    cols = _touched(a["IX"], d["OX"], d["FX"], a["SX"], a["DX"], a["PX"])
    return t.size_bytes * rows * cols // (a["IY"] * a["IX"])


def _distinct(tensors: Iterable[Tensor]) -> list[Tensor]:
    return list({t.name: t for t in tensors}.values())


def price(graph: Graph, ops: Sequence[Op], core: Core | Sequence[Core], hw: Accelerator,
          on_chip: frozenset[str] = frozenset(), limits_bytes: Mapping[str, int] | None = None) -> Cost | Unavailable:
    """Latency and energy of `ops` (one op, or a fused stack in execution order) on `core` (one
    core, or one core per op for a stack that spans cores).

    `on_chip` names tensors that are already in, or stay in, the core's local memory (no DRAM bytes).
    `limits_bytes`: memory budgets below the capacities; the core then tiles to fit its budget.
    Returns Unavailable when a core cannot run its op, a fused stack does not fit, or two cores of a
    stack have no link between them.
    """
    placed = [core] * len(ops) if isinstance(core, Core) else list(core)
    if len(ops) == 1 and len(placed) > 1:
        return _price_split(graph, ops[0], placed, hw, on_chip, limits_bytes)
    if len(placed) != len(ops):
        raise ValueError(f"price: {len(ops)} ops but {len(placed)} cores")
    for op, c in zip(ops, placed, strict=True):
        if not c.can_run(op.kind):
            return Unavailable(f"core {c.name!r} cannot run {op.kind.value} (op {op.name!r})")
    if len(ops) == 1:
        return _price_op(graph, ops[0], placed[0], hw, on_chip, limits_bytes)
    return _price_stack(graph, ops, placed, hw, on_chip, limits_bytes)


SPLIT_DIM: Mapping[OpKind, str] = {OpKind.CONV: "K", OpKind.CONV_DX: "C", OpKind.CONV_DW: "K", OpKind.MATMUL: "N"}
"""The channel dim a MAC op may be split along across cores: the one that indexes its second
operand and its output but not its first (output channels; a matmul's output columns), so that each
part reads all of the first operand, its own slice of the second and writes its own slice of the
output."""
ROW_DIM: Mapping[OpKind, str] = {OpKind.CONV: "OY", OpKind.MATMUL: "M"}
"""The row dim a convolution or matmul may be split along instead: each part reads its rows of the
first operand (a convolution's with the rows its window adds), all of the second, and writes its
rows of the output."""


def split_parts(size: int, parts: int) -> list[int]:
    """`size` iterations in `parts` nearly equal parts (the first ones one larger)."""
    return [size // parts + (1 if i < size % parts else 0) for i in range(parts)]


def _split_part(graph: Graph, op: Op, dim: str, share: int, k: int) -> tuple[Graph, Op]:
    """Part k of `op` cut along `dim` with `share` iterations, as a graph of its own: the operands
    `dim` indexes sliced (a convolution's input to the rows its window reads, without padding)."""
    tensors = {t: graph.tensors[t] for t in dict.fromkeys(op.inputs + op.outputs)}
    attrs = dict(op.attrs)

    def sliced(name: str, numerator: int, denominator: int) -> None:
        t = tensors[name]
        tensors[name] = Tensor(name, (t.numel // denominator * numerator,), t.dtype, t.role)

    for t in op.outputs:
        sliced(t, share, op.dims[dim])
    if dim == ROW_DIM.get(op.kind):
        if op.kind is OpKind.CONV:
            rows = min(attrs["IY"], (share - 1) * attrs["SY"] + (op.dims["FY"] - 1) * attrs["DY"] + 1)
            sliced(op.inputs[0], rows, attrs["IY"])
            attrs.update(IY=rows, PY=0)
        else:
            sliced(op.inputs[0], share, op.dims[dim])
    else:
        sliced(op.inputs[1], share, op.dims[dim])
    part = Op(f"{op.name}#{k}", op.kind, op.phase, op.inputs, op.outputs, {**op.dims, dim: share}, attrs)
    return Graph(part.name, tensors, (part,), tuple(op.inputs), tuple(op.outputs), accumulator=graph.accumulator), part


def _price_split(graph: Graph, op: Op, placed: Sequence[Core], hw: Accelerator, on_chip: frozenset[str],
                 limits_bytes: Mapping[str, int] | None) -> Cost | Unavailable:
    """One MAC op split across the distinct cores `placed` along its channels (`SPLIT_DIM`) or its
    rows (`ROW_DIM`, where it has them), whichever is faster (then cheaper in energy): nearly equal
    parts (`split_parts`), part i on core i, each priced as an op of its own (`_split_part`,
    `_split_along`). Unavailable for other kinds, grouped convolutions, fewer iterations than
    cores, a repeated core, or operands on chip (a split op's values are in DRAM)."""
    names = [c.name for c in placed]
    if op.kind not in SPLIT_DIM or op.dims.get("G", 1) != 1:
        return Unavailable(f"op {op.name!r} ({op.kind.value}) cannot be split across cores")
    for c in placed:
        if not c.can_run(op.kind):
            return Unavailable(f"core {c.name!r} cannot run {op.kind.value} (op {op.name!r})")
    dims = [SPLIT_DIM[op.kind]]
    if op.kind in ROW_DIM and (op.kind is OpKind.MATMUL or "IY" in op.attrs):
        dims.append(ROW_DIM[op.kind])
    dims = [d for d in dims if op.dims[d] >= len(placed)]
    if len(set(names)) != len(names) or not dims or on_chip:
        return Unavailable(f"op {op.name!r} cannot be split across {', '.join(names)}"
                           + (" (operands on chip)" if on_chip else ""))
    return min((_split_along(graph, op, placed, hw, limits_bytes, d) for d in dims),
               key=lambda cost: (cost.latency_cycles, cost.energy_pj))


def _split_along(graph: Graph, op: Op, placed: Sequence[Core], hw: Accelerator,
                 limits_bytes: Mapping[str, int] | None, dim: str) -> Cost:
    """`op` split along `dim` across `placed`, the parts at once:

        latency_cycles = preload + max(compute, local, dram - preload) + fill_drain
        compute = max_i compute_i, local = max_m sum_{i on memory m} local_i,
        dram = max_l sum_{i on DRAM link l} dram_i, preload and fill_drain: the parts' largest

    (the one-op formula over the parts' resources: parts that share a local memory or a DRAM link
    share its bandwidth; never less than any part's own latency); every byte, bit and pJ is the sum
    of the parts' (an operand every part reads whole is read once per part: replicated, not
    broadcast)."""
    names = [c.name for c in placed]
    parts: list[Cost] = []
    for k, (share, c) in enumerate(zip(split_parts(op.dims[dim], len(placed)), placed, strict=True)):
        alone, part = _split_part(graph, op, dim, share, k)
        parts.append(_price_op(alone, part, c, hw, frozenset(), limits_bytes))
    memory_cycles: dict[str, int] = defaultdict(int)
    link_cycles: dict[str, int] = defaultdict(int)
    working_sets: dict[str, int] = defaultdict(int)
    energy_by_part: dict[str, float] = defaultdict(float)
    for cost, c in zip(parts, placed, strict=True):
        link = hw.link_between(DRAM, c.name).name
        memory_cycles[c.memory] += cost.local_cycles
        link_cycles[link] += cost.dram_cycles
        working_sets[c.memory] += cost.working_set_bytes
        energy_by_part[f"memory:{c.memory}"] += cost.local_energy_pj
        energy_by_part[f"link:{link}"] += cost.dram_link_energy_pj

    def total(field: str) -> int | float:
        return sum(getattr(cost, field) for cost in parts)

    lane_cycles = [cost.compute_cycles * c.lanes for cost, c in zip(parts, placed, strict=True)]
    compute, fill = max(cost.compute_cycles for cost in parts), max(cost.fill_drain_cycles for cost in parts)
    local, dram = max(memory_cycles.values()), max(link_cycles.values())
    preload = max(cost.preload_cycles for cost in parts)
    return Cost(
        core=names[0],
        compute_cycles=compute,
        fill_drain_cycles=fill,
        local_cycles=local,
        dram_cycles=dram,
        latency_cycles=preload + max(compute, local, dram - preload) + fill,
        local_read_bits=int(total("local_read_bits")),
        local_write_bits=int(total("local_write_bits")),
        dram_read_bytes=int(total("dram_read_bytes")),
        dram_write_bytes=int(total("dram_write_bytes")),
        compute_energy_pj=total("compute_energy_pj"),
        register_energy_pj=total("register_energy_pj"),
        local_energy_pj=total("local_energy_pj"),
        dram_energy_pj=total("dram_energy_pj"),
        dram_link_energy_pj=total("dram_link_energy_pj"),
        working_set_bytes=sum(working_sets.values()),
        tiles=max(cost.tiles for cost in parts),
        utilisation=sum(cost.utilisation * lanes for cost, lanes in zip(parts, lane_cycles, strict=True))
        / max(sum(lane_cycles), 1),
        cores=tuple(names),
        working_set_by_memory=tuple(working_sets.items()),
        energy_by_part=tuple((part, pj) for part, pj in energy_by_part.items() if pj),
        preload_cycles=preload,
    )


def _distinct_cores(placed: Sequence[Core]) -> list[Core]:
    return list({c.name: c for c in placed}.values())


def _price_op(graph: Graph, op: Op, core: Core, hw: Accelerator, on_chip: frozenset[str],
              limits_bytes: Mapping[str, int] | None) -> Cost:
    """One op on one core (module docstring: compulsory traffic, or the MAC tiling rule)."""
    capacity = hw.working_capacity_bytes(core.name, limits_bytes)
    reads = _distinct(graph.tensors[t] for t in op.inputs + op.updates)
    writes = _distinct(graph.tensors[t] for t in op.outputs + op.updates)
    read = {t.name: t.size_bytes if t.name in op.updates else read_bytes(graph, op, t.name) for t in reads}
    total = sum(read.values()) + sum(t.size_bytes for t in writes)
    off_chip_reads = sum(read[t.name] for t in reads if t.name not in on_chip)
    dram_write = sum(t.size_bytes for t in writes if t.name not in on_chip)
    tiles = 1
    dram_read = off_chip_reads
    if total > capacity and op.kind in MAC_KINDS and core.is_pe_array:
        s_a = read[op.inputs[0]]
        s_b = sum(read.values()) - s_a
        s_o = sum(t.size_bytes for t in writes)
        half = max(capacity // 2, 1)
        n_a, n_b, n_o = (math.ceil(x / half) for x in (s_a, s_b, s_o))
        tiled, tiles = min(
            (s_b + n_b * s_a, n_b), (s_a + n_a * s_b, n_a), (s_a + n_o * s_b, n_o), (s_b + n_o * s_a, n_o)
        )
        on_chip_reads = sum(read[t.name] for t in reads if t.name in on_chip)
        dram_read = max(tiled - on_chip_reads, off_chip_reads)
    working_set = min(sum(read[t.name] for t in reads if t.name not in on_chip)
                      + sum(t.size_bytes for t in writes if t.name not in on_chip), capacity)
    work = _core_work(graph, op, core, hw.memories[core.memory])
    preload = 0 if core.double_buffered else \
        math.ceil(sum(read[t] for t in work.reread_inputs if t not in on_chip) / tiles)
    return _compose(hw, [core], [work], tiles, {core.memory: (dram_read, dram_write)}, {}, {core.memory: working_set},
                    ramp_cycles=0, preload_bytes={core.memory: preload})


def _price_stack(graph: Graph, ops: Sequence[Op], placed: Sequence[Core], hw: Accelerator, on_chip: frozenset[str],
                 limits_bytes: Mapping[str, int] | None) -> Cost | Unavailable:
    """A fused stack, tile by tile, each op on its core (module docstring, "A fused stack"). One
    function, over 80 lines: it is the inner loop of filling a cost table (benchmarks/cost_table.py)
    and its steps share the per-op placement maps it builds first."""
    memory_of_op = {op.name: c.memory for op, c in zip(ops, placed, strict=True)}
    core_of_op = {op.name: c for op, c in zip(ops, placed, strict=True)}
    members = set(memory_of_op)
    producer_memory: dict[str, str] = {}
    producer_core: dict[str, Core] = {}
    for op in ops:
        for t in op.outputs:
            producer_memory[t], producer_core[t] = memory_of_op[op.name], core_of_op[op.name]
    internal = {t for t in producer_memory
                if graph.consumers[t] and all(c in members for c in graph.consumers[t]) and t not in graph.outputs}
    memories = list(dict.fromkeys(memory_of_op.values()))
    static = dict.fromkeys(memories, 0)
    dynamic = dict.fromkeys(memories, 0)
    dram = {m: [0, 0] for m in memories}  # memory -> [DRAM read bytes, DRAM write bytes]
    received: dict[tuple[str, str], tuple[Core, Core]] = {}  # (tensor, memory) -> (producer core, reader core)
    for m in memories:
        ops_m = [op for op in ops if memory_of_op[op.name] == m]
        reads_m = _distinct(graph.tensors[t] for op in ops_m for t in op.inputs + op.updates
                            if t not in producer_memory or producer_memory[t] != m)
        for t in reads_m:
            if t.name in producer_memory:  # produced in the stack on another memory: passed over a link
                dynamic[m] += t.size_bytes
                reader = next(core_of_op[op.name] for op in ops_m if t.name in op.inputs + op.updates)
                received[t.name, m] = (producer_core[t.name], reader)
            else:
                size = max(read_bytes(graph, op, t.name) for op in ops_m if t.name in op.inputs + op.updates)
                if t.is_static:
                    static[m] += size
                else:
                    dynamic[m] += size
                if t.name not in on_chip:
                    dram[m][0] += size
        produced_m = _distinct(graph.tensors[t] for op in ops_m for t in op.outputs)
        dynamic[m] += sum(t.size_bytes for t in produced_m)
        written_m = _distinct(graph.tensors[t] for op in ops_m for t in op.outputs + op.updates if t not in internal)
        dram[m][1] += sum(t.size_bytes for t in written_m if t.name not in on_chip)
    capacity = {m: sum(hw.working_capacity_bytes(c.name, limits_bytes) for c in _distinct_cores(placed) if c.memory == m)
                for m in memories}
    max_tiles = min(op_rows(op) for op in ops)
    halo = dict.fromkeys(memories, 0)
    for op in ops:
        halo[memory_of_op[op.name]] += halo_bytes(graph, op)

    def per_tile(m: str, n: int) -> int:
        return static[m] + (halo[m] if n > 1 else 0) + math.ceil(dynamic[m] / n)

    tiles = 1
    for m in memories:
        if per_tile(m, max_tiles) > capacity[m]:
            return Unavailable(
                f"fused stack {ops[0].name!r}..{ops[-1].name!r} needs {per_tile(m, max_tiles)} "
                f"bytes of {m!r} per tile at {max_tiles} tiles, more than it holds ({capacity[m]})"
            )
        if per_tile(m, 1) > capacity[m]:
            n = max(2, math.ceil(dynamic[m] / (capacity[m] - static[m] - halo[m])))
            while per_tile(m, n) > capacity[m]:
                n += 1
            tiles = max(tiles, n)
    links: dict[str, int] = defaultdict(int)  # core-to-core link -> bits passed over it
    link_by_name = {}
    for (t, _), (source, reader) in received.items():
        try:
            link = hw.link_between(source.name, reader.name)
        except InputError:
            return Unavailable(f"fused stack {ops[0].name!r}..{ops[-1].name!r}: no link joins {source.name!r} "
                               f"and {reader.name!r}")
        links[link.name] += graph.tensors[t].size_bytes * 8
        link_by_name[link.name] = link
    link_out = defaultdict(int)  # memory -> bits it sends to other memories (read once there)
    link_in = defaultdict(int)
    for (t, m), (source, _) in received.items():
        link_out[source.memory] += graph.tensors[t].size_bytes * 8
        link_in[m] += graph.tensors[t].size_bytes * 8
    works = [_core_work(graph, op, c, hw.memories[c.memory]) for op, c in zip(ops, placed, strict=True)]
    busy = [sum(w.compute_cycles for w, c in zip(works, placed, strict=True) if c.name == core.name)
            for core in _distinct_cores(placed)]
    tiles = best_tile_count(sum(busy) - max(busy), sum(w.fill_drain_cycles for w in works), tiles, max_tiles)
    ramp = math.ceil((sum(busy) - max(busy)) / tiles)
    if not all(per_tile(m, tiles) <= capacity[m] for m in memories):  # one tile fits, but not the halo of two
        tiles = 1
    working_sets = {m: per_tile(m, tiles) for m in memories}
    preload: dict[str, int] = defaultdict(int)
    for m in memories:
        held = {t for op, c, w in zip(ops, placed, works, strict=True) if c.memory == m and not c.double_buffered
                for t in w.reread_inputs if t not in producer_memory and t not in on_chip}
        preload[m] = math.ceil(sum(graph.tensors[t].size_bytes for t in held) / tiles)
    return _compose(hw, placed, works, tiles, {m: (r, w) for m, (r, w) in dram.items()},
                    {name: (link_by_name[name], bits) for name, bits in links.items()}, working_sets, ramp,
                    {m: (link_out[m], link_in[m]) for m in memories}, fused=True, preload_bytes=preload)


_WINDOW_ON_INPUT = frozenset({OpKind.CONV, OpKind.CONV_DW, OpKind.MAXPOOL, OpKind.AVGPOOL, OpKind.MAXPOOL_BACKWARD})
_WINDOW_ON_OUTPUT_GRID = frozenset({OpKind.CONV_DX, OpKind.AVGPOOL_BACKWARD})


def halo_bytes(graph: Graph, op: Op) -> int:
    """Bytes of rows that consecutive tiles of a windowed op share (its halo), kept in local memory
    from one tile to the next in a fused stack. An op sliding an FY-row window with stride SY and
    dilation DY over its first input (conv, conv_dw, pooling) shares (FY - 1) * DY + 1 - SY input
    rows between tiles; one whose first input is on the output grid (conv_dx, avgpool_backward
    read dY) shares ceil(((FY - 1) * DY + 1 - SY) / SY) rows of it. A row is one image row of the
    tensor (bytes / (B * H), NCHW)."""
    if op.kind not in _WINDOW_ON_INPUT | _WINDOW_ON_OUTPUT_GRID or "SY" not in op.attrs:
        return 0
    span = (op.dims["FY"] - 1) * op.attrs.get("DY", 1) + 1 - op.attrs["SY"]
    rows = span if op.kind in _WINDOW_ON_INPUT else -(-span // op.attrs["SY"])
    if rows <= 0:
        return 0
    x = graph.tensors[op.inputs[0]]
    return rows * x.size_bytes // (x.shape[0] * x.shape[2])


def best_tile_count(ramp_cycles: int, fill_cycles_per_tile: int, fewest: int, most: int) -> int:
    """The n in [fewest, most] with the least ceil(ramp_cycles / n) + fill_cycles_per_tile * n (the
    smallest such n on ties): the pipeline ramp of a stack spanning cores against its fill/drain.
    The continuous R/n + F*n is convex with its minimum at sqrt(R/F) and the ceiling adds less than a
    cycle, so only the n with R/n + F*n below the best value found near that minimum can win: they
    form one interval around it, which is searched whole."""
    if ramp_cycles == 0 or fewest >= most:
        return fewest

    def cost(n: int) -> int:
        return -(-ramp_cycles // n) + fill_cycles_per_tile * n

    if fill_cycles_per_tile == 0:  # the least ceil(R / n) is at n = most; the smallest n reaching it
        return max(fewest, -(-ramp_cycles // -(-ramp_cycles // most)))
    centre = min(max(round(math.sqrt(ramp_cycles / fill_cycles_per_tile)), fewest), most)
    best = min(cost(centre), cost(fewest))
    # R/n + F*n <= best  <=>  F*n^2 - best*n + R <= 0
    root = math.sqrt(max(best * best - 4 * fill_cycles_per_tile * ramp_cycles, 0))
    low = max(fewest, math.floor((best - root) / (2 * fill_cycles_per_tile)))
    high = min(most, math.ceil((best + root) / (2 * fill_cycles_per_tile)))
    return min(range(low, high + 1), key=lambda n: (cost(n), n)) if low <= high else fewest


def _compose(hw: Accelerator, placed: Sequence[Core], works: Sequence[_CoreWork], tiles: int,
             dram: Mapping[str, tuple[int, int]], links: Mapping[str, tuple[Link, int]],
             working_sets: Mapping[str, int], ramp_cycles: int,
             link_bits: Mapping[str, tuple[int, int]] | None = None, fused: bool = False,
             preload_bytes: Mapping[str, int] | None = None) -> Cost:
    """Latency and energy from the parts (module docstring, last formulas): per core its compute,
    per memory its local traffic, per DRAM link its bytes, per core-to-core link its bits.

        latency_cycles = preload + max(busiest core, memory, DRAM link - preload, link) + ramp + fill/drain
    """
    cores = _distinct_cores(placed)
    compute = max(sum(w.compute_cycles for w, c in zip(works, placed, strict=True) if c.name == core.name)
                  for core in cores)
    fill = sum(w.fill_drain_cycles for w in works) * (tiles if fused else 1)
    read_bits: dict[str, int] = defaultdict(int)
    write_bits: dict[str, int] = defaultdict(int)
    for w, c in zip(works, placed, strict=True):
        read_bits[c.memory] += w.read_bits
        write_bits[c.memory] += w.write_bits
    dram_bits_by_link: dict[str, int] = defaultdict(int)
    dram_links = {}
    for m, (dram_read, dram_write) in dram.items():
        read_bits[m] += dram_write * 8 + (link_bits or {}).get(m, (0, 0))[0]
        write_bits[m] += dram_read * 8 + (link_bits or {}).get(m, (0, 0))[1]
        first = next(c for c in cores if c.memory == m)
        link = hw.link_between(DRAM, first.name)
        dram_bits_by_link[link.name] += (dram_read + dram_write) * 8
        dram_links[link.name] = (link, hw.dram_bandwidth_bits_per_cycle(first.name))
    local_cycles = max(hw.memories[m].transfer_cycles(read_bits[m], write_bits[m]) for m in dram)
    dram_cycles = max(math.ceil(bits / dram_links[name][1]) for name, bits in dram_bits_by_link.items())
    preload = max((math.ceil(size * 8 / hw.dram_bandwidth_bits_per_cycle(next(c for c in cores if c.memory == m).name))
                   for m, size in (preload_bytes or {}).items() if size), default=0)
    link_cycles = max((math.ceil(bits / link.bandwidth_bits_per_cycle) for link, bits in links.values()), default=0)
    local_energy = {m: read_bits[m] * hw.memories[m].read_energy_pj_per_bit
                    + write_bits[m] * hw.memories[m].write_energy_pj_per_bit for m in dram}
    dram_link_energy = {name: bits * dram_links[name][0].energy_pj_per_bit for name, bits in dram_bits_by_link.items()}
    link_energy = {name: bits * link.energy_pj_per_bit for name, (link, bits) in links.items()}
    lanes = {c.name: c.lanes for c in cores}
    padded = sum(w.compute_cycles * lanes[c.name] * w.utilisation for w, c in zip(works, placed, strict=True))
    lane_cycles = sum(w.compute_cycles * lanes[c.name] for w, c in zip(works, placed, strict=True))
    spans = len(dram) > 1
    return Cost(
        core=cores[0].name,
        compute_cycles=compute,
        fill_drain_cycles=fill,
        local_cycles=local_cycles,
        dram_cycles=dram_cycles,
        latency_cycles=preload + max(compute, local_cycles, dram_cycles - preload, link_cycles) + ramp_cycles + fill,
        local_read_bits=sum(read_bits.values()),
        local_write_bits=sum(write_bits.values()),
        dram_read_bytes=sum(r for r, _ in dram.values()),
        dram_write_bytes=sum(w for _, w in dram.values()),
        compute_energy_pj=sum(w.compute_energy_pj for w in works),
        register_energy_pj=sum(w.register_energy_pj for w in works),
        preload_cycles=preload,
        local_energy_pj=sum(local_energy.values()),
        dram_energy_pj=8 * sum(r * hw.dram.read_energy_pj_per_bit + w * hw.dram.write_energy_pj_per_bit
                               for r, w in dram.values()),
        dram_link_energy_pj=sum(dram_link_energy.values()),
        working_set_bytes=sum(working_sets.values()),
        tiles=tiles,
        utilisation=padded / lane_cycles if lane_cycles else 0.0,
        link_cycles=link_cycles,
        link_energy_pj=sum(link_energy.values()),
        cores=tuple(c.name for c in cores) if len(cores) > 1 else (),
        working_set_by_memory=tuple(working_sets.items()) if spans else (),
        energy_by_part=tuple([(f"memory:{m}", e) for m, e in local_energy.items()]
                             + [(f"link:{n}", dram_link_energy.get(n, 0.0) + link_energy.get(n, 0.0))
                                for n in {**dram_link_energy, **link_energy}
                                if dram_link_energy.get(n, 0.0) + link_energy.get(n, 0.0)])
        if spans else (),
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
        self._cache: dict[tuple[tuple[str, ...], str | tuple[str, ...], frozenset[str]], Cost | Unavailable] = {}

    def get(self, ops: tuple[str, ...], core: str | tuple[str, ...], on_chip: frozenset[str] = frozenset()
            ) -> Cost | Unavailable:
        """The price of `ops` on `core`, or with one core per op (a tuple as long as `ops`; one
        core repeated is the same as that core); one op on a tuple of several cores: split across
        them (`_price_split`)."""
        if not isinstance(core, str) and len(set(core)) == 1:
            core = core[0]
        key = (ops, core, on_chip)
        found = self._cache.get(key)
        if found is None:
            cores = self._cores[core] if isinstance(core, str) else [self._cores[c] for c in core]
            found = price(self.graph, [self.graph.op_by_name[o] for o in ops], cores, self.hw, on_chip,
                          self.limits_bytes)
            self._cache[key] = found
        return found

    def all_ops(self) -> dict[tuple[str, str], Cost | Unavailable]:
        """Price of every single op on every core."""
        return {(op.name, c): self.get((op.name,), c) for op in self.graph.ops for c in self._cores}

    def eligible_cores(self, ops: tuple[str, ...]) -> list[str]:
        return [c for c in self._cores if isinstance(self.get(ops, c), Cost)]
