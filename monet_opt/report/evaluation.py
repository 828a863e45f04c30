"""The result of `monet evaluate` as a JSON-ready dict, and the files written with --out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from monet_opt.io import write_json_atomic
from monet_opt.report.trace import trace_events
from monet_opt.schedule.simulate import SimulationResult


def by_phase(result: SimulationResult) -> dict[str, dict[str, float]]:
    """Per phase (forward, backward, optimizer, recompute): summed task energy (pJ; transfers
    between cores are not attributed to a phase) and summed busy cycles over all cores."""
    phases: dict[str, dict[str, float]] = {}
    for t in result.tasks:
        entry = phases.setdefault(t.phase, {"energy_pj": 0.0, "busy_cycles": 0})
        entry["energy_pj"] += t.energy_pj
        entry["busy_cycles"] += t.end_cycle - t.start_cycle
    return phases


def result_to_dict(result: SimulationResult, *, workload: str, mode: str, timeline: bool) -> dict[str, Any]:
    """Summary figures (and with `timeline` the per-task and per-transfer records)."""
    out: dict[str, Any] = {
        "workload": workload,
        "hardware": result.accelerator,
        "mode": mode,
        "latency_cycles": result.latency_cycles,
        "latency_s": result.latency_cycles / result.clock_hz,
        "energy_pj": result.energy_pj,
        "energy_breakdown_pj": dict(result.energy_breakdown_pj),
        "by_phase": by_phase(result),
        "peak_memory_bytes": dict(result.peak_memory_bytes),
        "capacity_bytes": dict(result.capacity_bytes),
        "static_dram_bytes": result.static_dram_bytes,
        "tasks": len(result.tasks),
        "violations": [{"kind": v.kind, "message": v.message} for v in result.violations],
    }
    if timeline:
        out["timeline"] = [
            {"name": t.name, "ops": list(t.ops), "core": t.core, "cores": list(t.cores or (t.core,)), "phase": t.phase,
             "start_cycle": t.start_cycle,
             "end_cycle": t.end_cycle, "dram_cycles": t.dram_cycles, "dram_read_bytes": t.dram_read_bytes,
             "dram_write_bytes": t.dram_write_bytes, "energy_pj": t.energy_pj}
            for t in result.tasks
        ]
        out["transfers"] = [
            {"what": x.what, "link": x.link, "start_cycle": x.start_cycle, "end_cycle": x.end_cycle,
             "size_bytes": x.size_bytes}
            for x in result.transfers
        ]
    return out


def write_reports(result: SimulationResult, out_dir: str | Path, *, workload: str, mode: str,
                  dynamic_dram_budget_bytes: int | None = None) -> list[Path]:
    """result.json, gantt.png, memory.png and trace.json in `out_dir` (each written atomically)."""
    out = Path(out_dir)
    from monet_opt.report.plots import plot_gantt, plot_memory  # matplotlib, only when plots are drawn

    title = f"{workload} ({mode}) on {result.accelerator}: {result.latency_cycles:,} cycles, {result.energy_pj / 1e6:,.1f} uJ"
    paths = [out / "result.json", out / "gantt.png", out / "memory.png", out / "trace.json"]
    write_json_atomic(paths[0], result_to_dict(result, workload=workload, mode=mode, timeline=True))
    plot_gantt(result, title, paths[1])
    plot_memory(result, f"Memory occupancy: {workload} ({mode}) on {result.accelerator}", paths[2],
                dynamic_dram_budget_bytes)
    write_json_atomic(paths[3], trace_events(result))
    return paths


def format_result(result: SimulationResult, *, workload: str, mode: str) -> str:
    """Readable summary of a simulation; the first line says when the plan violates a constraint."""
    lines = [f"INVALID PLAN: {len(result.violations)} violations, first: [{result.violations[0].kind}] "
             f"{result.violations[0].message}"] if result.violations else []
    lines += [
        f"{workload} ({mode}) on {result.accelerator}",
        f"latency   {result.latency_cycles:,} cycles = {result.latency_cycles / result.clock_hz * 1e3:.3f} ms",
        f"energy    {result.energy_pj / 1e6:,.2f} uJ",
    ]
    for part, pj in sorted(result.energy_breakdown_pj.items(), key=lambda kv: -kv[1]):
        share = pj / result.energy_pj * 100 if result.energy_pj else 0.0
        lines.append(f"  {part:<22} {pj / 1e6:>14,.2f} uJ  {share:5.1f} %")
    lines.append("by phase (task energy, busy cycles summed over cores)")
    for phase, entry in by_phase(result).items():
        lines.append(f"  {phase:<22} {entry['energy_pj'] / 1e6:>14,.2f} uJ  {entry['busy_cycles']:>14,} cycles")
    lines.append("peak memory")
    for memory, peak in result.peak_memory_bytes.items():
        cap = result.capacity_bytes[memory]
        lines.append(f"  {memory:<22} {peak / 2**20:>14,.2f} MiB of {cap / 2**20:,.2f} MiB")
    if result.violations:
        lines.append(f"VIOLATIONS ({len(result.violations)}):")
        lines += [f"  [{v.kind}] {v.message}" for v in result.violations]
    else:
        lines.append("no violations")
    return "\n".join(lines)
