"""Checkpoint heuristics on training graphs; every plan is judged by the validation scheduler.

- store-all: every saved activation in DRAM;
- recompute-all: every saved activation recomputed (one recomputation of the whole forward pass
  before the first backward op, so it saves no memory: the bad end of the trade-off);
- sqrt (Chen et al. 2016): saved activations in forward order, every ceil(sqrt(n))-th stays in
  DRAM, the others are recomputed;
- greedy (Chen et al.'s budget sweep): walk the saved activations in forward order summing the
  sizes of recomputed ones; when the sum exceeds a threshold b, keep that one in DRAM and restart;
  b sweeps a geometric grid, the cheapest plan within the budget wins;
- GA (MONET's NSGA-II): one gene per saved activation, 0 = DRAM, 1 = recompute, 2 = on chip
  (where eligible and where keeping that value alone on chip fits), objectives (cost, dynamic DRAM
  peak); plans that overflow a local memory get an infinite peak. The first population opens
  with the heuristic plan of least peak (rules and Chen's sweep) and the rule plans, so the GA
  answers wherever one of them fits.
Recompute plans fuse neighbouring recomputations where that is cheaper (`greedy_groups`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from monet_opt.families.checkpoint.space import CheckpointSpace, CostWeights, Decisions, Evaluation
from monet_opt.schedule.plan import Residency
from monet_opt.solving.common import Deadline
from monet_opt.solving.genetic import GAConfig, nsga2_search, pareto_front

RULES = ("store-all", "recompute-all", "sqrt")


def decisions_for(space: CheckpointSpace, residency: Mapping[str, Residency], weights: CostWeights) -> Decisions:
    return Decisions(dict(residency), space.greedy_groups(residency, weights))


def in_forward_order(space: CheckpointSpace) -> list[str]:
    return sorted(space.decisions, key=lambda a: (space.position[space.graph.producer[a]], a))


def sqrt_residency(space: CheckpointSpace) -> dict[str, Residency]:
    order = in_forward_order(space)
    step = max(1, math.ceil(math.sqrt(len(order))))
    return {a: Residency.RECOMPUTE for i, a in enumerate(order) if (i + 1) % step}


def _threshold_residency(space: CheckpointSpace, threshold_bytes: float) -> dict[str, Residency]:
    residency, running = {}, 0
    for a in in_forward_order(space):
        running += space.graph.tensors[a].size_bytes
        if running > threshold_bytes:
            running = 0
        else:
            residency[a] = Residency.RECOMPUTE
    return residency


def fits(space: CheckpointSpace, evaluation: Evaluation, budget_bytes: int) -> bool:
    return evaluation.dynamic_dram_peak_bytes <= budget_bytes and evaluation.local_overflow_bytes == 0 \
        and evaluation.simulation.valid


def rule_decisions(space: CheckpointSpace, rule: str, weights: CostWeights) -> Decisions:
    """The plan of a fixed rule: store-all, recompute-all or sqrt (module docstring)."""
    if rule == "store-all":
        return Decisions({})
    if rule == "recompute-all":
        return decisions_for(space, {a: Residency.RECOMPUTE for a in space.decisions}, weights)
    return decisions_for(space, sqrt_residency(space), weights)


def greedy_plan(space: CheckpointSpace, weights: CostWeights, budget_bytes: int | None,
                deadline: Deadline | None = None) -> tuple[Decisions, Evaluation] | None:
    """Chen's budget sweep: the cheapest of its plans within the budget (with `budget_bytes` None:
    the one with the smallest dynamic DRAM peak), or None when none fits. The sweep's end points
    are store-all (nothing recomputed) and every threshold of a geometric grid up to the sum of the
    sizes (everything recomputed), so where store-all fits it is a candidate.

    Each plan is one simulation (about 0.1 s on ResNet-18), so with a `deadline` the sweep
    evaluates every other plan first (the floor, always done: the peak is not even monotone in the
    threshold, since recomputing everything saves nothing), then the others, nearest the best of
    those first (cheapest within the budget, else lowest peak), while time remains.
    """
    sizes = [space.graph.tensors[a].size_bytes for a in space.decisions]
    low, high = max(1, min(sizes, default=1)), max(1, sum(sizes))
    grid = sorted({low * (high / low) ** (i / 24) for i in range(25)})
    residencies = [{}] + [_threshold_residency(space, b) for b in grid]
    candidates = list({tuple(sorted(r.items())): decisions_for(space, r, weights) for r in residencies}.values())
    evaluated = {k: (candidates[k], space.evaluate(candidates[k]))
                 for k in sorted({*range(0, len(candidates), 2), len(candidates) - 1})}

    def fitting(k: int) -> bool:
        evaluation = evaluated[k][1]
        return fits(space, evaluation, evaluation.dynamic_dram_peak_bytes if budget_bytes is None else budget_bytes)

    def rank(k: int) -> tuple[bool, float, float]:
        evaluation = evaluated[k][1]
        cost = evaluation.objective(weights)
        return (not fitting(k), cost if budget_bytes is not None else 0.0, evaluation.dynamic_dram_peak_bytes)

    pivot = min(evaluated, key=rank)
    for k in sorted(range(len(candidates)), key=lambda k: (abs(k - pivot), k)):
        if deadline is not None and deadline.expired():
            break
        if k not in evaluated:
            evaluated[k] = (candidates[k], space.evaluate(candidates[k]))
    plans = [evaluated[k] for k in sorted(evaluated) if fitting(k)]
    if budget_bytes is None:
        return min(plans, key=lambda pair: (pair[1].dynamic_dram_peak_bytes, pair[1].objective(weights)),
                   default=None)
    return min(plans, key=lambda pair: pair[1].objective(weights), default=None)


def lowest_peak_plan(space: CheckpointSpace, weights: CostWeights, enough_bytes: int | None = None,
                     deadline: Deadline | None = None) -> tuple[Decisions, Evaluation]:
    """The plan of least dynamic DRAM peak among the rule plans and Chen's sweep (ties: the
    cheaper), with its evaluation: the heuristic floor of the activation peak. With `enough_bytes`,
    the sweep (about 25 simulations) is skipped when a rule plan's peak is already within it; with
    a `deadline`, the sweep stops there (`greedy_plan`)."""
    plans = [(d, space.evaluate(d)) for d in (rule_decisions(space, rule, weights) for rule in RULES)]
    if enough_bytes is None or min(e.dynamic_dram_peak_bytes for _, e in plans) > enough_bytes:
        swept = greedy_plan(space, weights, None, deadline)
        plans += [swept] if swept is not None else []
    return min(plans, key=lambda pair: (pair[1].dynamic_dram_peak_bytes, pair[1].objective(weights)))


def on_chip_alone_fits(space: CheckpointSpace) -> set[str]:
    """Eligible activations whose plan with only them ON_CHIP fits every local memory: the GA's
    third allele. (On a design whose working sets fill the local memories, such as edge-tpu-quad,
    almost none does; offering the allele anyway would make most random genomes overflow.)"""
    return {a for a in space.on_chip_eligible
            if space.evaluate(Decisions({a: Residency.ON_CHIP})).local_overflow_bytes == 0}


def run_checkpoint_ga(space: CheckpointSpace, weights: CostWeights, budget_bytes: int | None, config: GAConfig,
                      deadline: Deadline
                      ) -> tuple[Decisions | None, Evaluation | None, list[tuple[float, float, Decisions]]]:
    """NSGA-II (see the module docstring): the cheapest front plan within the budget (with
    `budget_bytes` None: the smallest dynamic DRAM peak), its evaluation and the whole (cost, peak,
    decisions) front."""
    genes = list(space.decisions)
    on_chip = on_chip_alone_fits(space)
    choices = [(Residency.DRAM, Residency.RECOMPUTE, Residency.ON_CHIP) if a in on_chip
               else (Residency.DRAM, Residency.RECOMPUTE) for a in genes]
    plans: dict[tuple[int, ...], tuple[Decisions, Evaluation]] = {}

    def evaluate(genome: tuple[int, ...]) -> tuple[float, float]:
        residency = {a: c[g] for a, c, g in zip(genes, choices, genome, strict=True) if g}
        decisions = decisions_for(space, residency, weights)
        evaluation = space.evaluate(decisions)
        plans[genome] = (decisions, evaluation)
        peak = evaluation.dynamic_dram_peak_bytes if evaluation.local_overflow_bytes == 0 else math.inf
        return evaluation.objective(weights), peak

    lowest = lowest_peak_plan(space, weights)[0]
    rules = [{a: lowest.residency.get(a, Residency.DRAM) for a in genes}, sqrt_residency(space),
             {a: Residency.RECOMPUTE for a in genes}, {}]
    initial = [tuple(c.index(r.get(a, Residency.DRAM)) if r.get(a, Residency.DRAM) in c else 0
                     for a, c in zip(genes, choices, strict=True)) for r in rules]
    evaluated = nsga2_search([len(c) for c in choices], evaluate, config, deadline, initial)
    front = [(cost, peak, plans[g][0]) for cost, peak, g in
             pareto_front([(cost, peak, g) for g, (cost, peak) in evaluated.items()]) if peak != math.inf]
    if budget_bytes is None:
        fitting = [((plans[g][1].dynamic_dram_peak_bytes, plans[g][1].objective(weights)), g) for g in evaluated
                   if fits(space, plans[g][1], plans[g][1].dynamic_dram_peak_bytes)]
    else:
        fitting = [((plans[g][1].objective(weights), 0), g) for g in evaluated if fits(space, plans[g][1], budget_bytes)]
    if not fitting:
        return None, None, front
    _, best = min(fitting)
    return plans[best][0], plans[best][1], front
