"""Design-space sweeps: every chosen point of a design space (`monet_opt.space`) priced on a workload.

A point is evaluated per mode (training: the training step; inference: one forward pass without
the loss) with the default plan (layer by layer, every value in DRAM, each op on the eligible core
that finishes it earliest: `schedule.default_plan`), simulated by the validation scheduler: its
latency (cycles and seconds at the point's clock), energy, the peak of every memory, the static and
the peak DRAM bytes, and whether it is feasible. A point is infeasible when the plan violates a
capacity (DRAM or a local memory: the first violation is kept as the reason) or when some op can
run on no core of the point (the reason says which); infeasible points are kept, never dropped.

One row per (point, mode) (`PointResult`), in the order the points were chosen. Rows depend only
on the space file, the workload and the point's index, so a sweep split across processes or
machines gives the same rows as one run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monet_opt.cost import CostTable
from monet_opt.errors import InfeasibleError
from monet_opt.hardware.model import DRAM
from monet_opt.schedule import default_plan, simulate
from monet_opt.space import DesignSpace, area_proxy, point_accelerator, point_values
from monet_opt.workload.ir import Graph

MODES = ("training", "inference")


@dataclass(frozen=True)
class PointResult:
    """One design point in one mode, priced with the default plan (module docstring)."""

    index: int
    mode: str
    values: Mapping[str, float | int]
    area: float
    feasible: bool
    reason: str  # "" when feasible
    latency_cycles: int | None
    latency_s: float | None
    energy_pj: float | None
    dram_peak_bytes: int | None
    static_dram_bytes: int | None
    peak_memory_bytes: Mapping[str, int]


def evaluate_point(space: DesignSpace, index: int, graphs: Mapping[str, Graph]) -> list[PointResult]:
    """The point's rows, one per mode of `graphs` (mode -> graph), in the order of MODES."""
    hw = point_accelerator(space, index)
    values = point_values(space, index)
    area = area_proxy(hw, space.area)
    rows = []
    for mode in (m for m in MODES if m in graphs):
        graph = graphs[mode]
        try:
            table = CostTable(graph, hw)
            result = simulate(graph, hw, default_plan(graph, table), table)
        except InfeasibleError as exc:
            rows.append(PointResult(index, mode, values, area, False, str(exc), None, None, None, None, None, {}))
            continue
        capacity = [v.message for v in result.violations if v.kind == "capacity"]
        if result.violations and not capacity:
            raise AssertionError(f"{hw.name}: the default plan is invalid: {result.violations[0].message}")
        rows.append(PointResult(index, mode, values, area, not capacity, capacity[0] if capacity else "",
                                result.latency_cycles, result.latency_cycles / hw.clock_hz, result.energy_pj,
                                result.peak_memory_bytes.get(DRAM), result.static_dram_bytes,
                                dict(result.peak_memory_bytes)))
    return rows


def evaluate_points(space: DesignSpace, indices: Sequence[int], graphs: Mapping[str, Graph]) -> list[PointResult]:
    """`evaluate_point` for each index, in order (one batch of a sweep)."""
    return [row for index in indices for row in evaluate_point(space, index, graphs)]
