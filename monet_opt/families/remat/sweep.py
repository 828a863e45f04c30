"""Budget sweep: from the smallest feasible budget to the store-all peak, the exact curve (CP-SAT)
against the GA front, Chen's greedy and sqrt(n); overhead = cost / store-all cost - 1.

The time limit is the sweep's: the minimum-peak solve, the GA and each budget point get an equal
share of the time left when they start (`Deadline.share`)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from monet_opt.families.remat.baselines import greedy, sqrt_n
from monet_opt.families.remat.family import REMAT, smallest_feasible_budget
from monet_opt.families.remat.ga import GAConfig, nsga2
from monet_opt.families.remat.problem import RematProblem, evaluate_schedule, store_all_peak
from monet_opt.io import write_text_atomic
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, solve


@dataclass(frozen=True)
class SweepRow:
    budget: float
    cpsat_cost: float | None
    cpsat_status: str
    cpsat_gap: float | None
    ga_cost: float | None
    greedy_cost: float | None
    sqrt_cost: float | None


def budget_sweep(problem: RematProblem, points: int, options: SolverOptions, ga_config: GAConfig,
                 deadline: Deadline, progress: Callable[[str], None] = lambda _: None) -> list[SweepRow]:
    """`points` budgets evenly spaced between the smallest feasible budget and the store-all peak."""
    feasible, _ = smallest_feasible_budget(problem, options, deadline.share(1 / (points + 2)))
    lowest = feasible.achieved
    highest = store_all_peak(problem)
    budgets = sorted({round(lowest + (highest - lowest) * k / max(points - 1, 1)) for k in range(points)})
    front = nsga2(problem, ga_config, deadline.share(1 / (len(budgets) + 1)))
    sqrt_eval = evaluate_schedule(problem, sqrt_n(problem))
    cs, ss = problem.cost_scale, problem.size_scale
    rows = []
    for i, budget in enumerate(budgets):
        progress(f"budget {budget / ss:g} ({i + 1}/{len(budgets)})")
        exact = solve(REMAT, problem, CostUnderBudget(budget), "cpsat", options, deadline.share(1 / (len(budgets) - i)))
        fitting = [p.cost for p in front if p.peak <= budget]
        greedy_schedule = greedy(problem, budget)
        rows.append(SweepRow(
            budget=budget / ss,
            cpsat_cost=None if exact.objective is None else exact.objective / cs,
            cpsat_status=exact.stats.status.value,
            cpsat_gap=exact.stats.gap,
            ga_cost=min(fitting) / cs if fitting else None,
            greedy_cost=None if greedy_schedule is None else evaluate_schedule(problem, greedy_schedule).cost / cs,
            sqrt_cost=sqrt_eval.cost / cs if sqrt_eval.peak <= budget else None,
        ))
    return rows


def write_remat_sweep(problem: RematProblem, rows: list[SweepRow], out_dir: str | Path) -> list[Path]:
    """sweep.csv and sweep.png of an abstract problem's sweep."""
    unit = "units" if problem.size_scale == 1 else "input units"
    return write_sweep(rows, out_dir, base_cost=sum(problem.cost) / problem.cost_scale,
                       title=f"{problem.name}: overhead vs budget (store-all peak {store_all_peak(problem) / problem.size_scale:g})",
                       budget_label=f"memory budget [{unit} of cost_ram]", cost_label="cost")


def write_sweep(rows: list[SweepRow], out_dir: str | Path, *, base_cost: float, title: str, budget_label: str,
                cost_label: str) -> list[Path]:
    """sweep.csv and sweep.png (overhead = cost / base_cost - 1 vs budget) in `out_dir`."""
    from monet_opt.report.plots import save_png  # selects the Agg backend first

    import matplotlib.pyplot as plt

    out = Path(out_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(asdict(rows[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in rows)
    write_text_atomic(out / "sweep.csv", buffer.getvalue())
    base = base_cost

    def overhead(values: list[float | None]) -> list[float | None]:
        return [None if v is None else 100 * (v / base - 1) for v in values]

    budgets = [r.budget for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    series = [("CP-SAT (exact)", [r.cpsat_cost for r in rows], "o-", "#4C72B0"),
              ("NSGA-II front", [r.ga_cost for r in rows], "s--", "#DD8452"),
              ("Chen greedy", [r.greedy_cost for r in rows], "^:", "#55A868"),
              ("sqrt(n)", [r.sqrt_cost for r in rows], "d", "#C44E52")]
    for label, values, style, colour in series:
        points = [(b, o) for b, o in zip(budgets, overhead(values), strict=True) if o is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], style, color=colour, label=label, markersize=5)
    for r in rows:
        if r.cpsat_status != "optimal" and r.cpsat_cost is not None:
            ax.annotate(f"gap {100 * (r.cpsat_gap or 0):.1f}%", (r.budget, 100 * (r.cpsat_cost / base - 1)), fontsize=7)
    ax.set_xlabel(budget_label)
    ax.set_ylabel(f"recomputation overhead [% of store-all {cost_label}]")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, out / "sweep.png")
    return [out / "sweep.csv", out / "sweep.png"]
