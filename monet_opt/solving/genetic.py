"""NSGA-II over integer genomes (DEAP), shared by the checkpointing GAs (MONET's settings).

Initialisation: the `initial` genomes given by the caller (e.g. the rule plans, so that the search
starts from a feasible plan wherever a rule gives one), then random genomes (each gene uniform over
its alleles) up to the population size; uniform (binomial) crossover with
probability `crossover_probability` per pair, mutation with probability `mutation_probability` per
individual in which each gene is redrawn among its other alleles with probability 1/len (a bit
flip for binary genes), NSGA-II survivor selection over two minimised objectives. Deterministic
for a seed: DEAP draws from Python's global `random`, whose state is saved and restored
(`seeded_random`). The search stops at the deadline (checked before every evaluation, so it
overshoots by at most one): the answer is then the best of the genomes evaluated so far.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, TypeVar

from deap import base, tools

from monet_opt.solving.common import Deadline, GAConfig

Key = TypeVar("Key", bound=Hashable)
Objectives = TypeVar("Objectives")


class TwoObjectives(base.Fitness):
    """Two minimised objectives."""

    weights = (-1.0, -1.0)


class Individual(list):
    """A genome (list of genes) with its fitness."""

    def __init__(self, genes: list) -> None:
        super().__init__(genes)
        self.fitness = TwoObjectives()


Genome = tuple[int, ...]


@contextmanager
def seeded_random(seed: int) -> Iterator[None]:
    """Python's global `random` (which DEAP draws from) seeded for the block, then restored."""
    saved_state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved_state)


class FitnessMemo(Generic[Key, Objectives]):
    """Each genome is evaluated once: `memo(genes)` looks it up, `memo.seen` holds every result."""

    def __init__(self, evaluate: Callable[[Key], Objectives]) -> None:
        self.evaluate = evaluate
        self.seen: dict[Key, Objectives] = {}

    def __call__(self, genes: Sequence) -> Objectives:
        key = tuple(genes)
        if key not in self.seen:
            self.seen[key] = self.evaluate(key)
        return self.seen[key]


def nsga2_search(alleles: Sequence[int], evaluate: Callable[[Genome], tuple[float, float]],
                 config: GAConfig, deadline: Deadline, initial: Sequence[Genome] = ()
                 ) -> dict[Genome, tuple[float, float]]:
    """Every genome evaluated (gene i takes values 0..alleles[i]-1), with its two objectives;
    `initial` genomes open the first population."""
    fitness = FitnessMemo(evaluate)

    def mutate(ind: Individual) -> None:
        for i, count in enumerate(alleles):
            if count > 1 and random.random() < 1.0 / len(alleles):
                ind[i] = (ind[i] + random.randrange(1, count)) % count

    with seeded_random(config.seed):
        population = [Individual(list(g)) for g in initial[:config.population]]
        population += [Individual([random.randrange(c) for c in alleles])
                       for _ in range(config.population - len(population))]
        for ind in population:
            if deadline.expired() and fitness.seen:
                return fitness.seen
            ind.fitness.values = fitness(ind)
        population = tools.selNSGA2(population, len(population))
        for _ in range(config.generations):
            parents = tools.selTournamentDCD(population, len(population)) if len(population) % 4 == 0 else \
                [random.choice(population) for _ in population]
            offspring = [Individual(list(p)) for p in parents]
            for a, b in zip(offspring[::2], offspring[1::2], strict=False):
                if alleles and random.random() < config.crossover_probability:
                    tools.cxUniform(a, b, 0.5)
            for ind in offspring:
                if alleles and random.random() < config.mutation_probability:
                    mutate(ind)
                if deadline.expired():
                    return fitness.seen
                ind.fitness.values = fitness(ind)
            population = tools.selNSGA2(population + offspring, config.population)
    return fitness.seen


def pareto_front(points: Sequence[tuple[float, float, object]]) -> list[tuple[float, float, object]]:
    """The (cost, peak, payload) points not dominated by another, sorted by peak; ties keep the first."""
    unique: dict[tuple[float, float], tuple[float, float, object]] = {}
    for p in points:
        unique.setdefault((p[0], p[1]), p)
    front, best_cost = [], None
    for p in sorted(unique.values(), key=lambda p: (p[1], p[0])):
        if best_cost is None or p[0] < best_cost:
            front.append(p)
            best_cost = p[0]
    return front
