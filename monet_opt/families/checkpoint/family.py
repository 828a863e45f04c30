"""The checkpointing family: a training graph on an accelerator (`CheckpointProblem`: the space of
`space.py` and the cost weights to minimise), checkpoint decisions as payloads, and the validation
scheduler as referee (`schedule.check` on the serial plan).

With `CheckpointProblem.free_order`, cpsat also decides the order in which the ops run: it solves
the exact model on each candidate order of `order.py` (every valid order on small graphs, else the
reference order and two list schedules) and keeps the best; the answer is optimal over all orders
only when every order was solved to optimality (else feasible, with the no-recomputation bound of
`no_recompute_bound`).

Targets: `CostUnderBudget` (least weighted cost with the dynamic DRAM peak, i.e. activations and
transient gradients, at most the budget in bytes) and `MinimumPeak` (the smallest such peak). Every
local memory stays within its budget in both. Methods:
- cpsat (exact, `cpsat.py`), warm-started from the cheapest fitting heuristic plan; it claims the
  plan's latency (exact) and energy (within ENERGY_RELATIVE_TOLERANCE); the reported objective is
  the simulated one (the model rounds each step's weighted cost to an integer);
- ga (search): MONET's NSGA-II; greedy (search): Chen's budget sweep;
- store-all, recompute-all, sqrt (rules): fixed plans that ignore the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.cpsat import solve_checkpoint_cpsat
from monet_opt.families.checkpoint.heuristics import RULES, fits, greedy_plan, rule_decisions, run_checkpoint_ga
from monet_opt.families.checkpoint.order import candidate_orders
from monet_opt.families.checkpoint.space import MAX_GROUP_OPS, CheckpointSpace, CostWeights, Decisions, Evaluation
from monet_opt.report.answer import checkpoint_lines
from monet_opt.schedule.plan import Residency
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import ENERGY_RELATIVE_TOLERANCE, check
from monet_opt.solving.common import (
    Deadline, GAConfig, Incumbent, SolverOptions, SolveStats, SolveStatus, heuristic_stats, warm_start_stats,
)
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, Family, FeasibleBudget, Measurement, Method, MethodKind, MinimumPeak, Proposal, Result,
    Verdict, budget_infeasible_error, registry, solve,
)

CheckpointTarget = CostUnderBudget | MinimumPeak
WARM_START_SHARE = 0.25
"""The share of cpsat's time after which the warm start's budget sweep stops (its every other
plan is evaluated in any case, `greedy_plan`)."""


@dataclass(frozen=True)
class CheckpointProblem:
    """`diagnose`: whether an infeasible budget is diagnosed (a minimum-peak solve for the smallest
    feasible budget); searches over many spaces that only need the proof turn it off. `free_order`:
    cpsat chooses the order in which the ops run too (module docstring; unfused spaces only)."""

    space: CheckpointSpace
    weights: CostWeights
    diagnose: bool = True
    free_order: bool = False


def _budget(target: CheckpointTarget) -> int | None:
    return target.budget if isinstance(target, CostUnderBudget) else None


def _score(problem: CheckpointProblem, target: CheckpointTarget, evaluation: Evaluation) -> float:
    """The target's objective of an evaluated plan."""
    if isinstance(target, MinimumPeak):
        return evaluation.dynamic_dram_peak_bytes
    return evaluation.objective(problem.weights)


def _measured(problem: CheckpointProblem, target: CheckpointTarget, decisions: Decisions | None,
              evaluation: Evaluation | None, deadline: Deadline) -> Proposal[Decisions]:
    """The answer of a method that measured its own plan: it claims what it measured."""
    if decisions is None or evaluation is None:
        return Proposal(None, None, heuristic_stats(None, deadline))
    claim = Claim(plan=PlanClaim(evaluation.latency_cycles, evaluation.energy_pj))
    return Proposal(decisions, claim, heuristic_stats(_score(problem, target, evaluation), deadline))


def best_heuristic(space: CheckpointSpace, weights: CostWeights, budget_bytes: int | None,
                   deadline: Deadline | None = None) -> tuple[Decisions, Evaluation] | None:
    """The cheapest plan of the rules and the greedy sweep that fits the budget (None: the least
    peak), with its evaluation: CP-SAT's warm start (the sweep stops at `deadline`, `greedy_plan`)."""
    plans = [(d, space.evaluate(d)) for d in (rule_decisions(space, rule, weights) for rule in RULES)]
    greedy = greedy_plan(space, weights, budget_bytes, deadline)
    plans += [greedy] if greedy is not None else []
    if budget_bytes is None:
        fitting = [(e.dynamic_dram_peak_bytes, k) for k, (_, e) in enumerate(plans)
                   if fits(space, e, e.dynamic_dram_peak_bytes)]
    else:
        fitting = [(e.objective(weights), k) for k, (_, e) in enumerate(plans) if fits(space, e, budget_bytes)]
    return None if not fitting else plans[min(fitting)[1]]


def no_recompute_bound(space: CheckpointSpace, weights: CostWeights) -> float:
    """A lower bound on the weighted cost of every checkpoint plan of the space, in every order:
    each original step at its cheapest on-chip combination, and no recomputation (which only adds)."""
    return sum(min(weights.of(p.latency_cycles, p.energy_pj) for p in prices) for prices in space.step_prices)


def _cpsat(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
           ) -> Proposal[Decisions]:
    if problem.free_order:
        return _cpsat_free_order(problem, target, options, deadline)
    warm = best_heuristic(problem.space, problem.weights, _budget(target), deadline.share(WARM_START_SHARE))
    hint = None if warm is None else warm[0]
    decisions, claimed, stats = solve_checkpoint_cpsat(problem.space, problem.weights, target, options, deadline, hint)
    if decisions is None and warm is not None and stats.status is not SolveStatus.INFEASIBLE:
        # CP-SAT found nothing in time: the warm start, with CP-SAT's bound when it has one
        hint, evaluation = warm
        return Proposal(hint, Claim(plan=PlanClaim(evaluation.latency_cycles, evaluation.energy_pj)),
                        warm_start_stats(stats, _score(problem, target, evaluation)), {"from_warm_start": True})
    claim = None if claimed is None else Claim(plan=PlanClaim(latency_cycles=claimed[0], energy_pj=claimed[1]))
    return Proposal(decisions, claim, stats, {"from_warm_start": _no_better(problem, target, warm, claimed, stats)})


def _no_better(problem: CheckpointProblem, target: CheckpointTarget, warm: tuple[Decisions, Evaluation] | None,
               claimed: tuple[int, float] | None, stats: SolveStats) -> bool:
    """Whether CP-SAT's answer is no better than its warm start: it improved nothing (it may have
    proven the warm start optimal). The answer's score from its claim (latency exact, energy within
    the referee's tolerance) or, for a minimum peak, the model's peak (equal to the simulated one)."""
    if warm is None or claimed is None:
        return False
    found = stats.objective if isinstance(target, MinimumPeak) else problem.weights.of(*claimed)
    best = _score(problem, target, warm[1])
    return found is not None and (found >= best or math.isclose(found, best, rel_tol=ENERGY_RELATIVE_TOLERANCE))


def _cpsat_free_order(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions,
                      deadline: Deadline) -> Proposal[Decisions]:
    """The exact model on every candidate order (`candidate_orders`), the reference order first, each
    with an equal share of the time left; the best simulated answer wins (module docstring)."""
    candidates = candidate_orders(problem.space.graph)
    tried: list[dict[str, Any]] = []
    best: tuple[float, str, Decisions, Claim | None] | None = None
    solved_all = True  # every order proven optimal or infeasible
    for k, (name, order) in enumerate(candidates.orders):
        if deadline.expired():
            solved_all = False
            tried.append({"order": name, "status": "not solved (time limit)", "objective": None})
            continue
        space = problem.space.reordered(None if k == 0 else order)
        proposal = _cpsat(replace(problem, space=space, free_order=False), target, options,
                          deadline.share(1 / (len(candidates.orders) - k)))
        status = proposal.stats.status
        solved_all &= status in (SolveStatus.OPTIMAL, SolveStatus.INFEASIBLE)
        score = None
        if proposal.payload is not None:
            score = _score(problem, target, space.evaluate(proposal.payload))
            if best is None or score < best[0]:
                best = (score, name, replace(proposal.payload, op_order=None if k == 0 else order), proposal.claim)
        tried.append({"order": name, "status": status.value, "objective": score})
    report: dict[str, Any] = {"order": "free", "orders_exhaustive": candidates.exhaustive, "orders": tried,
                              "order_chosen": None if best is None else best[1]}
    elapsed_s = deadline.elapsed_s()
    space = problem.space
    if best is None:
        budget = _budget(target)
        proven = (candidates.exhaustive and solved_all) or _below_every_op_bound(problem, target)
        if not proven and budget is not None and not deadline.expired():
            lowest = _cpsat_free_order(problem, MinimumPeak(), options, deadline)
            report["smallest_budget_found"] = lowest.stats.objective
            report["smallest_budget_order"] = lowest.report["order_chosen"]
        stats = SolveStats(SolveStatus.INFEASIBLE if proven else SolveStatus.UNKNOWN, None, None, elapsed_s,
                           None, None, ())
        return Proposal(None, None, stats, report)
    score, _, decisions, claim = best
    if candidates.exhaustive and solved_all:
        status, bound = SolveStatus.OPTIMAL, score
    elif isinstance(target, CostUnderBudget):
        status, bound = SolveStatus.FEASIBLE, min(score, no_recompute_bound(space, problem.weights))
    else:
        status, bound = SolveStatus.FEASIBLE, float(min(score, space.op_peak_bound_bytes))
    stats = SolveStats(status, score, bound, elapsed_s, elapsed_s, elapsed_s, (Incumbent(elapsed_s, score, bound),))
    return Proposal(decisions, claim, stats, report)


def _ga(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
        ) -> Proposal[Decisions]:
    """MONET's NSGA-II (`options.ga`, default MONET's settings seeded with the solve's seed); its
    report's `front` is the final front, [weighted cost, dynamic DRAM peak in bytes] per plan."""
    decisions, evaluation, front = run_checkpoint_ga(problem.space, problem.weights, _budget(target),
                                                     options.ga or GAConfig(seed=options.seed), deadline)
    proposal = _measured(problem, target, decisions, evaluation, deadline)
    return replace(proposal, report={"front": [[cost, peak] for cost, peak, _ in front]})


def _greedy(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Decisions]:
    found = greedy_plan(problem.space, problem.weights, _budget(target), deadline)
    return _measured(problem, target, *(found or (None, None)), deadline)


def _rule(rule: str):
    def run(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Decisions]:
        decisions = rule_decisions(problem.space, rule, problem.weights)
        return _measured(problem, target, decisions, problem.space.evaluate(decisions), deadline)
    return run


def _referee(problem: CheckpointProblem, target: CheckpointTarget, decisions: Decisions, claim: Claim | None
             ) -> Verdict:
    space = problem.space.reordered(decisions.op_order)
    plan_claim = claim.plan if claim is not None and claim.plan is not None else PlanClaim()
    report = check(space.graph, space.hw, space.plan(decisions), plan_claim, limits_bytes=space.limits_bytes)
    evaluation = space.evaluation_of(report.result)
    violations = [f"{v.kind}: {v.message}" for v in report.result.violations]
    if isinstance(target, CostUnderBudget) and evaluation.dynamic_dram_peak_bytes > target.budget:
        violations.append(f"dynamic DRAM peak {evaluation.dynamic_dram_peak_bytes} bytes > budget {target.budget}")
    measured = Measurement(_score(problem, target, evaluation), evaluation.dynamic_dram_peak_bytes, tuple(violations),
                           evaluation.latency_cycles, evaluation.energy_pj, report.result)
    return Verdict(measured, report.disagreements)


def smallest_feasible_budget(problem: CheckpointProblem, options: SolverOptions, deadline: Deadline) -> FeasibleBudget:
    """The smallest dynamic DRAM peak of any checkpoint plan (exact when CP-SAT proves it in time)."""
    result = solve(CHECKPOINT, problem, MinimumPeak(), "cpsat", options, deadline)
    achieved = None if result.measurement is None else int(result.measurement.peak)
    if result.status is SolveStatus.OPTIMAL:
        return FeasibleBudget(achieved, achieved)
    lowest = int(result.stats.bound or 0)
    return FeasibleBudget(lowest if achieved is None else min(lowest, achieved), achieved)


def _diagnose(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
              ) -> InfeasibleError | None:
    """Why no plan fits, when that is proven: the DRAM capacity (`_capacity_error`), or the budget
    below the smallest feasible one (a minimum-peak solve; with `problem.diagnose` only). None
    when neither is shown (the answer is then "unknown", or the method's own proof stands)."""
    space = problem.space
    error = _capacity_error(space)
    if error is not None:
        return error
    if not isinstance(target, CostUnderBudget) or not problem.diagnose:
        return None
    name = f"{space.graph.name} on {space.hw.name}, dynamic DRAM"
    try:
        feasible = smallest_feasible_budget(problem, options, deadline)
    except InfeasibleError as exc:  # not even the smallest peak fits the memories
        return exc
    return budget_infeasible_error(name, target.budget, feasible, space.store_all.dynamic_dram_peak_bytes, 1, " bytes")


def _capacity_error(space: CheckpointSpace) -> InfeasibleError | None:
    """The DRAM capacity cannot hold the step in any plan: the static bytes plus the dynamic bytes
    of the largest op (`op_peak_bound_bytes`) exceed it. None when they fit."""
    short = space.op_peak_bound_bytes - space.dram_dynamic_capacity_bytes
    if short <= 0:
        return None
    capacity = space.hw.dram.capacity_bytes
    static = capacity - space.dram_dynamic_capacity_bytes
    return InfeasibleError(f"{space.graph.name} on {space.hw.name}: the DRAM capacity of {capacity} bytes cannot hold "
                           f"the step: the static bytes (weights, optimizer states, gradients) take {static} and the "
                           f"largest op needs {space.op_peak_bound_bytes} dynamic bytes more ({short} bytes short)")


def _describe(problem: CheckpointProblem, target: CheckpointTarget, decisions: Decisions | None,
              measured: Measurement | None) -> dict[str, Any]:
    space, base = problem.space, problem.space.store_all
    residency = {a: (decisions.residency.get(a, Residency.DRAM) if decisions else Residency.DRAM).value
                 for a in space.decisions}
    counts = {r.value: 0 for r in Residency}
    for value in residency.values():
        counts[value] += 1
    return {
        "workload": space.graph.name,
        "hardware": space.hw.name,
        "objective_kind": problem.weights.name,
        "local_budget_bytes": dict(space.limits_bytes),
        "store_all": {"latency_cycles": base.latency_cycles, "energy_pj": base.energy_pj,
                      "peak_memory": base.dynamic_dram_peak_bytes},
        "static_dram_bytes": base.simulation.static_dram_bytes,
        "latency_overhead": None if measured is None else measured.latency_cycles / base.latency_cycles - 1,
        "energy_overhead": None if measured is None else measured.energy_pj / base.energy_pj - 1,
        "choices": counts if decisions is not None else None,
        "residency": None if decisions is None else residency,
        "recompute_groups": None if decisions is None else [list(g) for g in decisions.groups],
        "order": "fixed",
        "op_order": None if decisions is None or decisions.op_order is None else list(decisions.op_order),
    }


def _space(problem: CheckpointProblem, proposal: Proposal[Decisions]) -> str:
    stacks = problem.space.stacks
    fused = sum(1 for ops, _ in stacks if len(ops) > 1)
    if proposal.report.get("order") == "free":
        orders = proposal.report["orders"]
        which = (f"every valid order ({len(orders)})" if proposal.report["orders_exhaustive"] else
                 f"{len(orders)} candidate orders ({', '.join(o['order'] for o in orders)}), not every valid order")
        steps = f"the fixed default allocation, unfused ops run serially in {which}"
    elif fused:
        steps = f"the fixed fusion partition ({len(stacks)} stacks, {fused} fused), run serially"
    else:
        steps = "the fixed default allocation, unfused ops run serially in the reference order"
    return (f"checkpoint plans of {steps}; per saved activation DRAM, on chip or recompute; fused recomputation "
            f"chains of up to {MAX_GROUP_OPS} ops")


def _unit(problem: CheckpointProblem, target: CheckpointTarget) -> str:
    if isinstance(target, MinimumPeak):
        return "bytes"
    return {"latency": "cycles", "energy": "pJ"}.get(problem.weights.name, "weighted cycles + pJ")


def _below_every_op_bound(problem: CheckpointProblem, target: CheckpointTarget) -> bool:
    """A budget, or the DRAM capacity left by the static bytes, below
    `CheckpointSpace.op_peak_bound_bytes`: no plan in any order fits it."""
    space = problem.space
    return (isinstance(target, CostUnderBudget) and target.budget < space.op_peak_bound_bytes) \
        or _capacity_error(space) is not None


def checkpoint_family() -> Family:
    """The family with its methods."""
    methods = registry(
        Method("cpsat", _cpsat, MethodKind.EXACT, "exact CP-SAT model (warm-started)"),
        Method("ga", _ga, MethodKind.SEARCH, "MONET's NSGA-II over DRAM / recompute / on-chip genes"),
        Method("greedy", _greedy, MethodKind.SEARCH, "Chen's budget sweep"),
        *(Method(rule, _rule(rule), MethodKind.RULE, f"the fixed {rule} plan") for rule in RULES))
    return Family("checkpoint", methods, _referee, _space, _describe, diagnose=_diagnose, objective_unit=_unit,
                  infeasible_on_sight=_below_every_op_bound, answer_lines=checkpoint_lines,
                  problem_name=lambda problem: f"{problem.space.graph.name}@{problem.space.hw.name}")


CHECKPOINT = checkpoint_family()
METHODS = tuple(CHECKPOINT.methods)


def solve_checkpoint(space: CheckpointSpace, weights: CostWeights, budget_bytes: int, method: str,
                     options: SolverOptions, ga_config: GAConfig | None = None,
                     deadline: Deadline | None = None) -> Result[Decisions]:
    """`solve()` of the checkpoint family: least weighted cost with the dynamic DRAM peak <= budget_bytes,
    by `deadline` (default: DEFAULT_TIME_LIMIT_S from now)."""
    return solve(CHECKPOINT, CheckpointProblem(space, weights), CostUnderBudget(budget_bytes), method,
                 replace(options, ga=ga_config or options.ga), deadline)
