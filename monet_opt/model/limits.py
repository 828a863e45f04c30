"""The physical limits of a graph on an accelerator: latencies no plan can beat, whatever it fuses,
recomputes, keeps on chip, allocates or splits, so that a plan's latency reads as a distance to them
("at 1.3x the DRAM bound, 6.2x the compute bound") and the larger bound names the resource that binds.

Compute bound. An op's work is its multiply-accumulates (MAC kinds) or its vector operations (the
others), `Op.work`; on a core it takes at least work / lanes cycles (`Core.lanes`:
the PE array's MACs per cycle, the vector unit's operations per cycle; the cost model's compute
cycles are never fewer). For any set C of cores, the ops that only cores of C can run
(`Core.can_run`) need at least the sum of their fastest such times in core-cycles, which |C| cores
give at most |C| per cycle, even with every op split across cores:
    compute_cycles = max over C of ceil(sum_{op: eligible(op) within C} min_{c in eligible(op)} work(op) / lanes(c) / |C|).
The maximum is reached at a union of eligible sets (a core that runs none of the counted ops only
adds capacity), so only those unions are tried.

DRAM bound. The bytes every plan moves between DRAM and the cores: each value no op produces and
some op reads (network inputs, weights, buffers, optimizer states, master weights) read once; each
value updated in place that persists across steps (weights, buffers, optimizer states, master
weights) written once; each network output written once. Gradients and activations are not counted:
fusing a weight gradient with its update, or keeping a value on chip, avoids them. The traffic goes
through the DRAM links (`Accelerator.link_between(DRAM, core)`), each at the slower of itself and
the DRAM port (`Accelerator.dram_bandwidth_bits_per_cycle`, the cost model's and the simulator's
rule), all at once at best:
    dram_cycles = ceil(compulsory_bytes * 8 / sum over distinct DRAM links of min(port, link) bits per cycle).

No critical-path or core-to-core link term: fused stacks pipeline consecutive ops across cores tile by
tile, so a chain of ops may take less than the sum of its ops' times, and no byte has to cross a link
between cores in every plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monet_opt.model.hardware.model import DRAM, Accelerator
from monet_opt.model.workload.ir import Graph, TensorRole

PERSISTENT_ROLES = frozenset({TensorRole.WEIGHT, TensorRole.BUFFER, TensorRole.OPTIMIZER_STATE,
                              TensorRole.MASTER_WEIGHT})
"""Roles whose in-place updates every plan writes back to DRAM (they outlive the step)."""


@dataclass(frozen=True)
class PhysicalLimits:
    """The compute and DRAM bounds of one graph on one accelerator (module docstring), in cycles,
    with the terms that make them."""

    compute_cycles: int
    compute_cores: tuple[str, ...]  # the set of cores whose work gives the compute bound
    compute_core_cycles: float  # the fastest core-cycles of the ops only those cores can run
    compulsory_dram_bytes: int
    dram_bits_per_cycle: int  # the DRAM links' bandwidth together, each capped by the DRAM port
    dram_cycles: int

    @property
    def binding(self) -> str:
        """The resource of the higher bound: "DRAM" or "compute"."""
        return "DRAM" if self.dram_cycles >= self.compute_cycles else "compute"

    def ratios(self, latency_cycles: int) -> dict[str, float]:
        """latency / each bound (1.0: at the limit)."""
        return {"dram": latency_cycles / max(self.dram_cycles, 1),
                "compute": latency_cycles / max(self.compute_cycles, 1)}

    def line(self, latency_cycles: int) -> str:
        """One sentence: how far a latency is from each bound, the binding one first."""
        ratios = self.ratios(latency_cycles)
        dram = (f"{ratios['dram']:.2f}x the DRAM bound ({self.dram_cycles:,} cycles: "
                f"{self.compulsory_dram_bytes / 1e6:,.1f} MB every plan moves at {self.dram_bits_per_cycle} bits "
                "per cycle)")
        compute = (f"{ratios['compute']:.2f}x the compute bound ({self.compute_cycles:,} cycles: the work only "
                   f"{', '.join(self.compute_cores)} can run, at full rate)")
        first, second = (dram, compute) if self.binding == "DRAM" else (compute, dram)
        return f"at {first}, {second}; {self.binding} binds"

    def to_dict(self, latency_cycles: int | None) -> dict[str, Any]:
        return {"compute_cycles": self.compute_cycles, "compute_cores": list(self.compute_cores),
                "compute_core_cycles": self.compute_core_cycles,
                "compulsory_dram_bytes": self.compulsory_dram_bytes,
                "dram_bits_per_cycle": self.dram_bits_per_cycle, "dram_cycles": self.dram_cycles,
                "binding": self.binding,
                "latency_over_bound": None if latency_cycles is None else self.ratios(latency_cycles),
                "summary": None if latency_cycles is None else self.line(latency_cycles)}


def compulsory_dram_bytes(graph: Graph) -> int:
    """Bytes every plan of `graph` moves between DRAM and the cores (module docstring)."""
    read = {t for t in graph.tensors if t not in graph.producer and graph.consumers[t]}
    written = {t for op in graph.ops for t in op.updates if graph.tensors[t].role in PERSISTENT_ROLES}
    written |= {t for t in graph.outputs if t in graph.producer and not graph.tensors[t].is_static}
    return sum(graph.tensors[t].size_bytes for t in read) + sum(graph.tensors[t].size_bytes for t in written)


def physical_limits(graph: Graph, hw: Accelerator) -> PhysicalLimits:
    """The compute and DRAM bounds of `graph` on `hw` (module docstring)."""
    fastest: dict[frozenset[str], float] = {}  # eligible cores -> the fastest core-cycles of their ops
    for op in graph.ops:
        eligible = [core for core in hw.cores if core.can_run(op.kind)]
        if eligible and op.work:
            key = frozenset(core.name for core in eligible)
            fastest[key] = fastest.get(key, 0.0) + min(op.work / core.lanes for core in eligible)
    unions: set[frozenset[str]] = set()
    for eligible in fastest:
        unions |= {eligible, *(union | eligible for union in unions)}
    best: tuple[float, tuple[str, ...], float] = (0.0, (), 0.0)
    for cores in unions:
        work = sum(cycles for eligible, cycles in fastest.items() if eligible <= cores)
        best = max(best, (work / len(cores), tuple(sorted(cores)), work))
    links = {hw.link_between(DRAM, core.name).name: hw.dram_bandwidth_bits_per_cycle(core.name) for core in hw.cores}
    bandwidth = sum(links.values())
    compulsory = compulsory_dram_bytes(graph)
    return PhysicalLimits(math.ceil(best[0]), best[1], best[2], compulsory, bandwidth,
                          math.ceil(compulsory * 8 / bandwidth))
