"""Budget sweeps (`monet checkpoint graph|training --sweep`): from the smallest feasible budget to
the store-all peak, the exact curve (cpsat) against the GA's front, Chen's greedy and sqrt(n), for
any family whose methods take `CostUnderBudget` and `MinimumPeak` targets (remat, checkpoint).

Every column comes from `solve()`, refereed like any other answer: the smallest feasible budget
is cpsat's minimum peak, the largest the store-all plan's peak; cpsat, greedy and sqrt(n) are
solved at each budget (a sqrt(n) plan above the budget is no answer there); the GA runs once, at
the store-all budget, and each budget's GA cell is the cheapest point of its final front within
that budget (the GA method's `front`, each point measured by the evaluator the referee uses:
`evaluate_schedule` for abstract graphs, the simulator for training graphs). Costs and budgets are in the family's reported units, as in every
answer's JSON (`Result.to_dict`: a family that reports its model units keeps integers integers).
The time limit is the sweep's: the minimum-peak solve, the GA and each budget point get an equal
share of the time left when they start (`Deadline.share`); greedy and sqrt(n) take what they need.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.io import write_text_atomic
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, Family, MinimumPeak, solve


@dataclass(frozen=True)
class SweepRow:
    """One budget's answers (reported units; None: no answer within that budget)."""

    budget: float
    cpsat_cost: float | None
    cpsat_status: str
    cpsat_gap: float | None
    ga_cost: float | None
    greedy_cost: float | None
    sqrt_cost: float | None


def budget_sweep(family: Family, problem: Any, points: int, options: SolverOptions, deadline: Deadline,
                 progress: Callable[[str], None] = lambda _: None) -> list[SweepRow]:
    """`points` budgets evenly spaced (model units) between the smallest feasible budget and the
    store-all peak, each answered by every column (module docstring); GA settings: `options.ga`."""
    smallest = solve(family, problem, MinimumPeak(), "cpsat", options, deadline.share(1 / (points + 2)))
    if smallest.measurement is None:
        raise InfeasibleError(f"{smallest.problem}: no answer of the smallest peak within the time limit")
    lowest = int(smallest.measurement.peak)
    highest = int(solve(family, problem, MinimumPeak(), "store-all", options, deadline).measurement.peak)
    budgets = sorted({round(lowest + (highest - lowest) * k / max(points - 1, 1)) for k in range(points)})
    ga = solve(family, problem, CostUnderBudget(highest), "ga", options, deadline.share(1 / (len(budgets) + 1)),
               diagnose=False)
    front = ga.details.get("front", [])
    per_memory = family.scales(problem, CostUnderBudget(highest))[1]
    rows = []
    for i, budget in enumerate(budgets):
        progress(f"budget {budget / per_memory:g} ({i + 1}/{len(budgets)})")
        exact = solve(family, problem, CostUnderBudget(budget), "cpsat", options,
                      deadline.share(1 / (len(budgets) - i))).to_dict()
        fitting = [cost for cost, peak in front if peak <= exact["budget"]]
        rows.append(SweepRow(
            budget=exact["budget"], cpsat_cost=exact["objective"], cpsat_status=exact["status"],
            cpsat_gap=exact["gap"], ga_cost=min(fitting) if fitting else None,
            greedy_cost=_validated_cost(family, problem, budget, "greedy", options, deadline),
            sqrt_cost=_validated_cost(family, problem, budget, "sqrt", options, deadline)))
    return rows


def _validated_cost(family: Family, problem: Any, budget: int, method: str, options: SolverOptions,
                    deadline: Deadline) -> float | None:
    """`method`'s objective at `budget` (reported units) when its answer is validated, else None."""
    answer = solve(family, problem, CostUnderBudget(budget), method, options, deadline, diagnose=False).to_dict()
    return answer["objective"] if answer["validated"] else None


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
