"""Gantt chart and memory-over-time plots of a simulation (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from monet_opt.io import atomic_path
from monet_opt.schedule.simulate import SimulationResult

PHASE_COLOURS = {"forward": "#4C72B0", "backward": "#DD8452", "optimizer": "#55A868", "recompute": "#C44E52"}
TRANSFER_COLOUR = "#8C8C8C"
MIB = 1024 * 1024


def save_png(fig: plt.Figure, path: str | Path) -> None:
    """Lay out, write atomically (a temporary file renamed) and close a figure."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _time_axis(ax: plt.Axes, result: SimulationResult) -> None:
    """x axis in Mcycles, labelled with the clock's conversion to milliseconds."""
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x / 1e6:g}"))
    ax.set_xlabel(f"time [Mcycles]  (1 Mcycle = {1e6 / result.clock_hz * 1e3:.3g} ms at {result.clock_hz / 1e9:.3g} GHz)")
    ax.set_xlim(0, max(result.latency_cycles, 1))


def _draw_gantt(ax: plt.Axes, result: SimulationResult) -> None:
    """Ops (stacks) per core, coloured by phase, and transfers per link; a fused stack (several ops)
    hatched and drawn on every core it runs on; the legend under the axes."""
    cores = list(dict.fromkeys(c for t in result.tasks for c in (t.cores or (t.core,))))
    links = sorted({x.link for x in result.transfers})
    rows = cores + [f"link {link}" for link in links]
    y = {name: i for i, name in enumerate(rows)}
    for phase, colour in PHASE_COLOURS.items():
        for fused in (False, True):
            placed = [((t.start_cycle, t.end_cycle - t.start_cycle), y[c]) for t in result.tasks
                      if t.phase == phase and (len(t.ops) > 1) == fused for c in (t.cores or (t.core,))]
            for row in sorted({r for _, r in placed}):
                ax.broken_barh([b for b, r in placed if r == row], (row - 0.38, 0.76), facecolors=colour,
                               edgecolor="black" if fused else "white", linewidth=0.3, hatch="///" if fused else None)
    for link in links:
        bars = [(x.start_cycle, x.end_cycle - x.start_cycle) for x in result.transfers if x.link == link]
        ax.broken_barh(bars, (y[f"link {link}"] - 0.38, 0.76), facecolors=TRANSFER_COLOUR, edgecolor="white",
                       linewidth=0.3)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    handles = [Patch(color=c, label=p) for p, c in PHASE_COLOURS.items() if any(t.phase == p for t in result.tasks)]
    if any(len(t.ops) > 1 for t in result.tasks):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="fused stack"))
    handles.append(Patch(color=TRANSFER_COLOUR, label="transfer / DRAM traffic"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)


def gantt_rows(result: SimulationResult) -> int:
    return len({c for t in result.tasks for c in (t.cores or (t.core,))}) + len({x.link for x in result.transfers})


def plot_gantt(result: SimulationResult, title: str, path: str | Path) -> None:
    """The Gantt chart of `_draw_gantt` alone."""
    fig, ax = plt.subplots(figsize=(14, 1.0 + 0.45 * gantt_rows(result)))
    _draw_gantt(ax, result)
    _time_axis(ax, result)
    ax.set_title(title)
    save_png(fig, path)


def _drawn_memories(result: SimulationResult) -> list[str]:
    """The memories whose occupancy changes during the run."""
    return [m for m, points in result.memory_curves.items() if len(points) > 1]


def _draw_memory(ax: plt.Axes, result: SimulationResult, memory: str, dynamic_dram_budget_bytes: int | None) -> None:
    """One memory's occupancy over time (MiB), with its capacity and budget (`plot_memory`)."""
    from monet_opt.model.hardware.model import DRAM

    base = result.static_dram_bytes if memory == DRAM else 0
    points = list(result.memory_curves[memory])
    xs = [p[0] for p in points] + [result.latency_cycles]
    ys = [(p[1] - base) / MIB for p in points] + [(points[-1][1] - base) / MIB]
    label = "dynamic occupancy (above the static bytes)" if base else "occupancy"
    ax.step(xs, [max(y, 0) for y in ys], where="post", color="#4C72B0", linewidth=1.2, label=label)
    ax.fill_between(xs, [max(y, 0) for y in ys], step="post", alpha=0.25, color="#4C72B0")
    capacity = (result.capacity_bytes[memory] - base) / MIB
    peak = (result.peak_memory_bytes[memory] - base) / MIB
    budget = dynamic_dram_budget_bytes if memory == DRAM else result.limits_bytes.get(memory)
    top = max(peak, 1e-9)
    if budget is not None:
        ax.axhline(budget / MIB, color="#DD8452", linestyle=":", linewidth=1.6, label="budget")
        top = max(top, budget / MIB)
    if capacity <= 3 * top:
        ax.axhline(capacity, color="#C44E52", linestyle="--", linewidth=1.2, label="capacity")
        top = max(top, capacity)
    else:
        ax.text(0.99, 0.06, f"capacity {capacity:,.0f} MiB{' above the static bytes' if base else ''} (off scale)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8, color="#C44E52")
    ax.set_ylim(0, top * 1.12)
    ax.set_ylabel("MiB")
    static = f"static {base / MIB:,.1f} MiB + dynamic peak {peak:,.2f} MiB" if base else f"peak {peak:,.2f} MiB"
    ax.set_title(f"{memory}: {static}", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8, frameon=False)


def plot_memory(result: SimulationResult, title: str, path: str | Path,
                dynamic_dram_budget_bytes: int | None = None) -> None:
    """Occupancy of every memory over time (MiB). DRAM: the static bytes (weights, gradients,
    optimizer states) are a flat band; the panel shows the dynamic bytes above them on their own
    scale, with the activation budget when one is given. Every memory: its capacity (dashed) when
    near the curve, else noted, and its budget (dotted) when the plan was simulated with one."""
    memories = _drawn_memories(result)
    fig, axes = plt.subplots(len(memories), 1, figsize=(12, 1.9 * len(memories) + 0.8), sharex=True, squeeze=False)
    for ax, memory in zip(axes[:, 0], memories, strict=True):
        _draw_memory(ax, result, memory, dynamic_dram_budget_bytes)
    _time_axis(axes[-1, 0], result)
    fig.suptitle(title)
    save_png(fig, path)


def plot_schedule(result: SimulationResult, title: str, path: str | Path,
                  dynamic_dram_budget_bytes: int | None = None) -> None:
    """The Gantt chart by core with every memory's occupancy under it, on one time axis: which op
    holds which memory when (a delayed op shows as a gap on its core while a memory is at its budget)."""
    memories = _drawn_memories(result)
    heights = [max(0.45 * gantt_rows(result), 1.5)] + [1.6] * len(memories)
    fig, axes = plt.subplots(len(heights), 1, figsize=(14, sum(heights) + 1.0), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    _draw_gantt(axes[0, 0], result)
    for ax, memory in zip(axes[1:, 0], memories, strict=True):
        _draw_memory(ax, result, memory, dynamic_dram_budget_bytes)
    _time_axis(axes[-1, 0], result)
    axes[0, 0].set_title(title)
    save_png(fig, path)
