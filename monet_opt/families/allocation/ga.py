"""The genetic algorithm the field knows for allocation: Stream's DEAP NSGA-II.

Genome: one core per task (among its eligible cores). mu + lambda with NSGA-II selection: an initial
population of `population` random genomes, mu = population / 2 survivors, lambda = population
offspring per generation made by DEAP's varOr (crossover with probability 0.3, else mutation with
probability 0.7, else a copy); crossover: two-point (Stream switches to cxOrdered above 10 genes,
which needs permutation genomes; core ids are not one, so two-point is kept throughout); mutation:
reassign one random task to another eligible core, or swap the cores of two tasks (when both stay
eligible), with equal probability. Objectives (energy, latency), both minimised, measured by the
caller's evaluator (the validation scheduler). 64 x 250 by default; deterministic for a seed
(`genetic.seeded_random`); it stops at the deadline (checked before every evaluation).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from deap import algorithms, base, tools

from monet_opt.families.allocation.problem import AllocationProblem
from monet_opt.solving.common import Deadline
from monet_opt.solving.genetic import FitnessMemo, GAConfig, Individual, pareto_front, seeded_random


def stream_ga_config(population: int = 64, generations: int = 250, seed: int = 0) -> GAConfig:
    """Stream's settings: 64 x 250, crossover 0.3, mutation 0.7."""
    return GAConfig(population, generations, crossover_probability=0.3, mutation_probability=0.7, seed=seed)


def stream_ga(problem: AllocationProblem, evaluate: Callable[[tuple[str, ...]], tuple[float, int]],
              config: GAConfig, deadline: Deadline) -> list[tuple[float, int, tuple[str, ...]]]:
    """The (energy, latency, assignment) Pareto front of every genome evaluated."""
    eligible = [list(options) for options in problem.options]
    fitness = FitnessMemo(evaluate)

    def mutate(ind: Individual) -> tuple[Individual]:
        if random.random() < 0.5:
            t = random.randrange(len(ind))
            others = [c for c in eligible[t] if c != ind[t]]
            if others:
                ind[t] = random.choice(others)
        elif len(ind) > 1:
            a, b = random.sample(range(len(ind)), 2)
            if ind[b] in eligible[a] and ind[a] in eligible[b]:
                ind[a], ind[b] = ind[b], ind[a]
        return (ind,)

    def crossover(a: Individual, b: Individual) -> tuple[Individual, Individual]:
        if len(a) > 2:
            tools.cxTwoPoint(a, b)
        return a, b

    toolbox = base.Toolbox()
    toolbox.register("mate", crossover)
    toolbox.register("mutate", mutate)
    with seeded_random(config.seed):
        population = [Individual([random.choice(e) for e in eligible]) for _ in range(config.population)]
        for ind in population:
            if deadline.expired() and fitness.seen:
                return _front_of(fitness.seen)
            ind.fitness.values = fitness(ind)
        mu, lam = max(1, config.population // 2), config.population
        population = tools.selNSGA2(population, mu)
        for _ in range(config.generations):
            offspring = algorithms.varOr(population, toolbox, lam, config.crossover_probability,
                                         config.mutation_probability)
            for ind in offspring:
                if deadline.expired():
                    return _front_of(fitness.seen)
                ind.fitness.values = fitness(ind)
            population = tools.selNSGA2(population + offspring, mu)
    return _front_of(fitness.seen)


def _front_of(seen: dict[tuple[str, ...], tuple[float, int]]) -> list[tuple[float, int, tuple[str, ...]]]:
    front = pareto_front([(latency, energy, genome) for genome, (energy, latency) in seen.items()])
    return [(energy, int(latency), genome) for latency, energy, genome in front]
