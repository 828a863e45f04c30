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

import random
import time
from dataclasses import dataclass

from deap import base, tools

from monet_opt.solvers.common import SolveStats, heuristic_stats
from monet_opt.solvers.remat.baselines import keep_policy_schedule, sources
from monet_opt.solvers.remat.problem import RematProblem, evaluate_schedule


class _Fitness(base.Fitness):
    weights = (-1.0, -1.0)


class _Individual(list):
    def __init__(self, bits: list[int]) -> None:
        super().__init__(bits)
        self.fitness = _Fitness()


@dataclass(frozen=True)
class GAConfig:
    population: int = 100
    generations: int = 50
    crossover_probability: float = 0.9
    mutation_probability: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class FrontPoint:
    cost: int
    peak: int
    schedule: tuple[int, ...]


def nsga2(problem: RematProblem, config: GAConfig) -> list[FrontPoint]:
    """The non-dominated (cost, peak) schedules found, sorted by peak."""
    fixed = sources(problem)
    genes = [i for i in range(problem.n) if problem.succs[i] and i not in fixed]
    saved_state = random.getstate()
    random.seed(config.seed)
    try:
        cache: dict[tuple[int, ...], tuple[int, int, list[int]]] = {}

        def evaluate(bits: list[int]) -> tuple[int, int]:
            key = tuple(bits)
            if key not in cache:
                keep = fixed | {g for g, bit in zip(genes, bits, strict=True) if not bit}
                schedule = keep_policy_schedule(problem, keep)
                result = evaluate_schedule(problem, schedule)
                cache[key] = (result.cost, result.peak, schedule)
            return cache[key][:2]

        population = [_Individual([random.randint(0, 1) for _ in genes]) for _ in range(config.population)]
        for ind in population:
            ind.fitness.values = evaluate(ind)
        population = tools.selNSGA2(population, len(population))
        for _ in range(config.generations):
            parents = tools.selTournamentDCD(population, len(population)) if len(population) % 4 == 0 else \
                [random.choice(population) for _ in population]
            offspring = [_Individual(list(p)) for p in parents]
            for a, b in zip(offspring[::2], offspring[1::2], strict=False):
                if genes and random.random() < config.crossover_probability:
                    tools.cxUniform(a, b, 0.5)
            for ind in offspring:
                if genes and random.random() < config.mutation_probability:
                    tools.mutFlipBit(ind, 1.0 / len(genes))
                ind.fitness.values = evaluate(ind)
            population = tools.selNSGA2(population + offspring, config.population)
    finally:
        random.setstate(saved_state)
    front: dict[tuple[int, int], FrontPoint] = {}
    for cost, peak, schedule in cache.values():
        front.setdefault((cost, peak), FrontPoint(cost, peak, tuple(schedule)))
    points = sorted(front.values(), key=lambda p: (p.peak, p.cost))
    pareto, best_cost = [], None
    for p in points:
        if best_cost is None or p.cost < best_cost:
            pareto.append(p)
            best_cost = p.cost
    return pareto


def run_ga(problem: RematProblem, budget: int, config: GAConfig) -> tuple[list[int] | None, SolveStats, list[FrontPoint]]:
    """The cheapest front schedule within `budget` (None if none fits), stats, and the whole front."""
    started = time.perf_counter()
    front = nsga2(problem, config)
    fitting = [p for p in front if p.peak <= budget]
    best = min(fitting, key=lambda p: p.cost) if fitting else None
    stats = heuristic_stats(best.cost if best else None, time.perf_counter() - started)
    return (list(best.schedule) if best else None), stats, front
