"""NSGA-II over checkpoint genomes, the baseline MONET used (DEAP).

Genome: one bit per candidate node (every node with a successor, except sources), 1 = recompute
(not kept); decoded by the keep-set policy of `baselines.keep_policy_schedule`. Objectives:
(total compute cost, peak memory), both minimised. Binary random initialisation, uniform
(binomial) crossover with probability 0.9, bit-flip mutation with probability 0.1 per individual
(each bit flips with probability 1/len), NSGA-II survivor selection, 100 individuals x 50
generations by default. Deterministic for a seed: DEAP draws from Python's global `random`, whose
state is saved and restored around the run.
"""

from __future__ import annotations

from dataclasses import dataclass

from monet_opt.families.remat.baselines import keep_policy_schedule, sources
from monet_opt.families.remat.problem import RematProblem, evaluate_schedule
from monet_opt.solving.common import Deadline, SolveStats, heuristic_stats
from monet_opt.solving.genetic import GAConfig, nsga2_search, pareto_front

__all__ = ["FrontPoint", "GAConfig", "nsga2", "run_ga"]


@dataclass(frozen=True)
class FrontPoint:
    cost: int
    peak: int
    schedule: tuple[int, ...]


def nsga2(problem: RematProblem, config: GAConfig, deadline: Deadline) -> list[FrontPoint]:
    """The non-dominated (cost, peak) schedules found, sorted by peak."""
    fixed = sources(problem)
    genes = [i for i in range(problem.n) if problem.succs[i] and i not in fixed]
    schedules: dict[tuple[int, ...], list[int]] = {}

    def evaluate(bits: tuple[int, ...]) -> tuple[int, int]:
        keep = fixed | {g for g, bit in zip(genes, bits, strict=True) if not bit}
        schedule = schedules[bits] = keep_policy_schedule(problem, keep)
        result = evaluate_schedule(problem, schedule)
        return result.cost, result.peak

    evaluated = nsga2_search([2] * len(genes), evaluate, config, deadline)
    front = pareto_front([(cost, peak, bits) for bits, (cost, peak) in evaluated.items()])
    return [FrontPoint(int(cost), int(peak), tuple(schedules[bits])) for cost, peak, bits in front]


def run_ga(problem: RematProblem, budget: int | None, config: GAConfig, deadline: Deadline
           ) -> tuple[list[int] | None, SolveStats, list[FrontPoint]]:
    """The cheapest front schedule within `budget` (None if none fits), or with `budget` None the
    front's smallest peak; stats (objective: its cost, or its peak), and the whole front."""
    front = nsga2(problem, config, deadline)
    if budget is None:
        best = min(front, key=lambda p: (p.peak, p.cost))
        return list(best.schedule), heuristic_stats(best.peak, deadline), front
    fitting = [p for p in front if p.peak <= budget]
    best = min(fitting, key=lambda p: p.cost) if fitting else None
    stats = heuristic_stats(best.cost if best else None, deadline)
    return (list(best.schedule) if best else None), stats, front
