"""The plan family's GA baseline: MONET's NSGA-II (`solving.genetic.nsga2_search`) over a genome of
one core per task (each op or fused stack, and each recomputation, used when it runs) and one
residency per saved activation (DRAM; recomputed, for a candidate; on chip, where eligible), each
genome decoded by the list scheduler with those choices fixed (`list_schedule.Fixed`).

Objectives, both minimised: the tasks the decoder could not place (a genome whose plan does not fit
the budget ranks by how far its schedule got) and the plan's weighted cost. The answer: the
cheapest genome that places every task. The first population holds the list scheduler's own plan
(`best_list_schedule`) and the problem's starts (`PlanProblem.starts`), so the GA starts from a plan
within the budget whenever the heuristic or the caller has one. Deterministic for a seed; it stops at the deadline.
"""

from __future__ import annotations

from dataclasses import dataclass

from monet_opt.families.plan.list_schedule import Fixed, best_list_schedule, list_schedule
from monet_opt.families.plan.problem import ParallelPlan, PlanProblem
from monet_opt.schedule.plan import RECOMPUTE_SUFFIX
from monet_opt.solving.common import Deadline, GAConfig, OutOfTime
from monet_opt.solving.genetic import Genome, nsga2_search

UNPLACED_COST = 1e30
"""The cost objective of a genome whose schedule stopped at a task (its other objective ranks it)."""
HEURISTIC_SHARE = 0.1
"""The share of the GA's time that the list scheduler's plan for the first population may take."""


@dataclass(frozen=True)
class Genes:
    """The genome's layout: the tasks with their cores, the values with their residencies."""

    tasks: tuple[str, ...]
    cores: tuple[tuple[str, ...], ...]
    values: tuple[str, ...]
    residencies: tuple[tuple[str, ...], ...]

    @staticmethod
    def of(problem: PlanProblem) -> Genes:
        tasks = (*problem.stack_ops, *(op + RECOMPUTE_SUFFIX for op in problem.cloneable))
        values = tuple(dict.fromkeys((*problem.candidates, *problem.on_chip_eligible)))
        return Genes(tasks, tuple(tuple(dict.fromkeys(o.core for o in problem.options[t])) for t in tasks), values,
                     tuple(("dram", *(("recompute",) if v in problem.candidates else ()),
                            *(("on_chip",) if v in problem.on_chip_eligible else ())) for v in values))

    @property
    def alleles(self) -> list[int]:
        return [len(c) for c in self.cores] + [len(r) for r in self.residencies]

    def decode(self, genome: Genome) -> tuple[frozenset[str], Fixed]:
        chosen = dict(zip(self.values, (r[g] for r, g in zip(self.residencies, genome[len(self.tasks):],
                                                             strict=True)), strict=True))
        core_of = {t: cores[g] for t, cores, g in zip(self.tasks, self.cores, genome, strict=False)}
        return (frozenset(v for v, r in chosen.items() if r == "recompute"),
                Fixed(core_of, frozenset(v for v, r in chosen.items() if r == "on_chip")))

    def encode(self, plan: ParallelPlan) -> Genome:
        cores = [c.index(plan.core_of[t]) if t in plan.core_of else 0 for t, c in zip(self.tasks, self.cores,
                                                                                       strict=True)]
        residency = [r.index("recompute" if v in plan.recomputed else "on_chip" if v in plan.on_chip else "dram")
                     for v, r in zip(self.values, self.residencies, strict=True)]
        return tuple(cores + residency)


def plan_ga(problem: PlanProblem, budget_bytes: int, config: GAConfig, deadline: Deadline) -> ParallelPlan | None:
    """The cheapest plan within the budget the GA evaluated (None: none placed every task in time)."""
    genes = Genes.of(problem)
    plans: dict[Genome, ParallelPlan] = {}

    def evaluate(genome: Genome) -> tuple[float, float]:
        recomputed, fixed = genes.decode(genome)
        try:
            scheduled = list_schedule(problem, recomputed, budget_bytes, deadline, fixed)
        except OutOfTime:
            return float(len(genes.tasks)), UNPLACED_COST
        if scheduled.plan is None:
            order = list(scheduled.order)
            return float(len(order) - order.index(scheduled.blocked_at)), UNPLACED_COST
        plans[genome] = scheduled.plan
        return 0.0, problem.weights.of(*scheduled.plan.cost(problem))

    heuristic = best_list_schedule(problem, budget_bytes, deadline.share(HEURISTIC_SHARE))
    initial = [genes.encode(plan) for plan in (heuristic, *problem.starts) if plan is not None]
    seen = nsga2_search(genes.alleles, evaluate, config, deadline, initial)
    placed = [(cost, genome) for genome, (unplaced, cost) in seen.items() if unplaced == 0 and genome in plans]
    return plans[min(placed)[1]] if placed else None
