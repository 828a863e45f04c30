"""Budget sweep on a training graph: from the smallest feasible activation budget to the store-all
peak, the exact curve (CP-SAT) against the NSGA-II front, Chen's greedy and sqrt(n)."""

from __future__ import annotations

from collections.abc import Callable

from monet_opt.errors import InfeasibleError
from monet_opt.solvers.checkpoint.cpsat import min_dram_peak_cpsat
from monet_opt.solvers.checkpoint.heuristics import fits, run_checkpoint_ga, run_heuristic
from monet_opt.solvers.checkpoint.solve import solve_checkpoint
from monet_opt.solvers.checkpoint.space import CheckpointSpace, Objective
from monet_opt.solvers.common import SolverOptions
from monet_opt.solvers.genetic import GAConfig
from monet_opt.solvers.remat.sweep import SweepRow


def smallest_feasible_budget(space: CheckpointSpace, options: SolverOptions) -> int:
    """The smallest dynamic DRAM peak CP-SAT finds (proven when its status is optimal)."""
    decisions, _ = min_dram_peak_cpsat(space, options)
    if decisions is None:
        raise InfeasibleError(f"{space.graph.name}: no checkpoint plan fits the local memories within the time limit")
    return space.evaluate(decisions).dynamic_dram_peak_bytes


def training_budget_sweep(space: CheckpointSpace, objective: Objective, points: int, options: SolverOptions,
                          ga_config: GAConfig, progress: Callable[[str], None] = lambda _: None) -> list[SweepRow]:
    """`points` budgets (bytes) evenly spaced between the smallest feasible one and store-all."""
    lowest = smallest_feasible_budget(space, options)
    highest = space.store_all.dynamic_dram_peak_bytes
    budgets = sorted({round(lowest + (highest - lowest) * k / max(points - 1, 1)) for k in range(points)})
    _, _, _, front = run_checkpoint_ga(space, objective, highest, ga_config)
    sqrt_plan, sqrt_eval, _ = run_heuristic(space, "sqrt", objective, highest)
    rows = []
    for i, budget in enumerate(budgets):
        progress(f"budget {budget} bytes ({i + 1}/{len(budgets)})")
        exact = solve_checkpoint(space, objective, budget, "cpsat", options)
        greedy_plan, greedy_eval, _ = run_heuristic(space, "greedy", objective, budget)
        fitting = [cost for cost, peak, _ in front if peak <= budget]
        rows.append(SweepRow(
            budget=budget,
            cpsat_cost=None if exact.evaluation is None else exact.evaluation.objective(objective),
            cpsat_status=exact.stats.status.value,
            cpsat_gap=exact.stats.gap,
            ga_cost=min(fitting) if fitting else None,
            greedy_cost=None if greedy_eval is None else greedy_eval.objective(objective),
            sqrt_cost=sqrt_eval.objective(objective) if fits(space, sqrt_eval, budget) else None,
        ))
    return rows
