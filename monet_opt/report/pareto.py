"""A latency-energy Pareto front as CSV and PNG."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from monet_opt.io import write_text_atomic


def write_front(points: Sequence[tuple[int, float]], out_dir: str | Path, title: str,
                others: Sequence[tuple[str, Sequence[tuple[int, float]]]] = ()) -> list[Path]:
    """front.csv (latency_cycles, energy_pj) and front.png in `out_dir`; `others` are labelled point
    sets drawn for comparison (e.g. the greedy plan)."""
    from monet_opt.report.plots import save_png  # selects the Agg backend first

    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, ScalarFormatter

    out = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["latency_cycles", "energy_pj"])
    writer.writerows(sorted(points))
    write_text_atomic(out / "front.csv", buffer.getvalue())
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ordered = sorted(points)
    largest = max([p[1] for p in ordered] + [p[1] for _, extra in others for p in extra], default=1.0)
    unit, per_unit = next(((u, f) for u, f in (("J", 1e12), ("mJ", 1e9), ("uJ", 1e6), ("nJ", 1e3))
                           if largest >= f), ("pJ", 1.0))
    ax.step([p[0] for p in ordered], [p[1] / per_unit for p in ordered], "o-", where="post", label="Pareto front")
    for label, extra in others:
        ax.plot([p[0] for p in extra], [p[1] / per_unit for p in extra], "x", markersize=8, label=label)
    ax.set_xlabel("latency [cycles]")
    ax.set_ylabel(f"energy [{unit}]")
    for axis in (ax.xaxis, ax.yaxis):  # plain numbers: no offset or scientific notation
        axis.set_major_formatter(ScalarFormatter(useOffset=False))
        axis.get_major_formatter().set_scientific(False)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, out / "front.png")
    return [out / "front.csv", out / "front.png"]
