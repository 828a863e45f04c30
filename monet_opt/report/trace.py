"""Chrome / Perfetto trace-event JSON of a simulation (open in ui.perfetto.dev or chrome://tracing)."""

from __future__ import annotations

from typing import Any

from monet_opt.schedule.simulate import SimulationResult


def trace_events(result: SimulationResult) -> dict[str, Any]:
    """One process per accelerator; a thread per core (tasks; a stack on several cores on each) and
    per link (transfers); a counter
    track per memory (occupancy in bytes). Timestamps in microseconds: cycles / clock_hz * 1e6."""
    us_per_cycle = 1e6 / result.clock_hz
    rows = sorted({c for t in result.tasks for c in (t.cores or (t.core,))}) + sorted({x.link for x in result.transfers})
    tid = {name: i + 1 for i, name in enumerate(rows)}
    events: list[dict[str, Any]] = [{"name": "process_name", "ph": "M", "pid": 1, "args": {"name": result.accelerator}}]
    events += [{"name": "thread_name", "ph": "M", "pid": 1, "tid": tid[r], "args": {"name": r}} for r in rows]
    for t in result.tasks:
        for core in t.cores or (t.core,):
            events.append({
                "name": t.name, "cat": t.phase, "ph": "X", "pid": 1, "tid": tid[core],
                "ts": t.start_cycle * us_per_cycle, "dur": (t.end_cycle - t.start_cycle) * us_per_cycle,
                "args": {"ops": list(t.ops), "cycles": t.end_cycle - t.start_cycle, "energy_pj": t.energy_pj},
            })
    for x in result.transfers:
        events.append({
            "name": x.what, "cat": "transfer", "ph": "X", "pid": 1, "tid": tid[x.link],
            "ts": x.start_cycle * us_per_cycle, "dur": (x.end_cycle - x.start_cycle) * us_per_cycle,
            "args": {"bytes": x.size_bytes},
        })
    for memory, points in result.memory_curves.items():
        for cycle, level in points:
            events.append({"name": f"{memory} occupancy", "ph": "C", "pid": 1, "ts": cycle * us_per_cycle,
                           "args": {"bytes": level}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}
