"""Budget sweep on a training graph: from the smallest feasible activation budget to the store-all
peak, the exact curve (CP-SAT) against the NSGA-II front, Chen's greedy and sqrt(n).

The time limit is the sweep's: the minimum-peak solve, the GA and each budget point get an equal
share of the time left when they start (`Deadline.share`)."""

from __future__ import annotations

from collections.abc import Callable

from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem, smallest_feasible_budget
from monet_opt.families.checkpoint.heuristics import fits, greedy_plan, rule_decisions, run_checkpoint_ga
from monet_opt.families.remat.sweep import SweepRow
from monet_opt.solving.common import Deadline, GAConfig, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, solve


def training_budget_sweep(problem: CheckpointProblem, points: int, options: SolverOptions, ga_config: GAConfig,
                          deadline: Deadline, progress: Callable[[str], None] = lambda _: None) -> list[SweepRow]:
    """`points` budgets (bytes) evenly spaced between the smallest feasible one and store-all."""
    space, weights = problem.space, problem.weights
    lowest = smallest_feasible_budget(problem, options, deadline.share(1 / (points + 2))).achieved
    if lowest is None:
        raise InfeasibleError(f"{space.graph.name}: no checkpoint plan fits the local memories within the time limit")
    highest = space.store_all.dynamic_dram_peak_bytes
    budgets = sorted({round(lowest + (highest - lowest) * k / max(points - 1, 1)) for k in range(points)})
    _, _, front = run_checkpoint_ga(space, weights, highest, ga_config, deadline.share(1 / (len(budgets) + 1)))
    sqrt_eval = space.evaluate(rule_decisions(space, "sqrt", weights))
    rows = []
    for i, budget in enumerate(budgets):
        progress(f"budget {budget} bytes ({i + 1}/{len(budgets)})")
        exact = solve(CHECKPOINT, problem, CostUnderBudget(budget), "cpsat", options,
                      deadline.share(1 / (len(budgets) - i)))
        greedy = greedy_plan(space, weights, budget)
        fitting = [cost for cost, peak, _ in front if peak <= budget]
        rows.append(SweepRow(
            budget=budget,
            cpsat_cost=exact.objective,
            cpsat_status=exact.status.value,
            cpsat_gap=exact.stats.gap,
            ga_cost=min(fitting) if fitting else None,
            greedy_cost=None if greedy is None else greedy[1].objective(weights),
            sqrt_cost=sqrt_eval.objective(weights) if fits(space, sqrt_eval, budget) else None,
        ))
    return rows
