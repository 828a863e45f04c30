"""The checkpointing family: a training graph on an accelerator (`CheckpointProblem`: the space of
`space.py` and the cost weights to minimise), checkpoint decisions as payloads, and the validation
scheduler as referee (`schedule.check` on the serial plan).

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

from dataclasses import dataclass, replace
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.schedule.plan import Residency
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import check
from monet_opt.solvers.checkpoint.cpsat import solve_checkpoint_cpsat
from monet_opt.solvers.checkpoint.heuristics import RULES, fits, greedy_plan, rule_decisions, run_checkpoint_ga
from monet_opt.solvers.checkpoint.space import MAX_GROUP_OPS, CheckpointSpace, CostWeights, Decisions, Evaluation
from monet_opt.solvers.common import Deadline, SolverOptions, SolveStatus, heuristic_stats
from monet_opt.solvers.contract import (
    Claim, CostUnderBudget, Family, FeasibleBudget, Measurement, Method, MethodKind, MinimumPeak, Proposal, Result,
    Verdict, budget_infeasible_error, registry, solve,
)
from monet_opt.solvers.genetic import GAConfig

CheckpointTarget = CostUnderBudget | MinimumPeak


@dataclass(frozen=True)
class CheckpointProblem:
    """`diagnose`: whether an infeasible budget is diagnosed (a minimum-peak solve for the smallest
    feasible budget); searches over many spaces that only need the proof turn it off."""

    space: CheckpointSpace
    weights: CostWeights
    diagnose: bool = True


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


def best_heuristic(space: CheckpointSpace, weights: CostWeights, budget_bytes: int | None) -> Decisions | None:
    """The cheapest plan of the rules and the greedy sweep that fits the budget (CP-SAT's warm start)."""
    plans = [(d, space.evaluate(d)) for d in (rule_decisions(space, rule, weights) for rule in RULES)]
    greedy = greedy_plan(space, weights, budget_bytes)
    plans += [greedy] if greedy is not None else []
    if budget_bytes is None:
        fitting = [(e.dynamic_dram_peak_bytes, d) for d, e in plans if fits(space, e, e.dynamic_dram_peak_bytes)]
    else:
        fitting = [(e.objective(weights), d) for d, e in plans if fits(space, e, budget_bytes)]
    return min(fitting, key=lambda pair: pair[0], default=(None, None))[1]


def _cpsat(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
           ) -> Proposal[Decisions]:
    hint = best_heuristic(problem.space, problem.weights, _budget(target))
    decisions, claimed, stats = solve_checkpoint_cpsat(problem.space, problem.weights, target, options, deadline, hint)
    if decisions is None and hint is not None and stats.status is not SolveStatus.INFEASIBLE:
        # CP-SAT found nothing in time: the warm start, with CP-SAT's bound when it has one
        evaluation = problem.space.evaluate(hint)
        status = SolveStatus.FEASIBLE if stats.bound is not None else SolveStatus.HEURISTIC
        return Proposal(hint, Claim(plan=PlanClaim(evaluation.latency_cycles, evaluation.energy_pj)),
                        replace(stats, status=status, objective=_score(problem, target, evaluation)),
                        {"from_warm_start": True})
    claim = None if claimed is None else Claim(plan=PlanClaim(latency_cycles=claimed[0], energy_pj=claimed[1]))
    return Proposal(decisions, claim, stats, {"from_warm_start": False})


def _ga(config: GAConfig | None):
    def run(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Decisions]:
        decisions, evaluation, _ = run_checkpoint_ga(problem.space, problem.weights, _budget(target),
                                                     config or GAConfig(seed=options.seed), deadline)
        return _measured(problem, target, decisions, evaluation, deadline)
    return run


def _greedy(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Decisions]:
    found = greedy_plan(problem.space, problem.weights, _budget(target))
    return _measured(problem, target, *(found or (None, None)), deadline)


def _rule(rule: str):
    def run(problem: CheckpointProblem, target: CheckpointTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Decisions]:
        decisions = rule_decisions(problem.space, rule, problem.weights)
        return _measured(problem, target, decisions, problem.space.evaluate(decisions), deadline)
    return run


def _referee(problem: CheckpointProblem, target: CheckpointTarget, decisions: Decisions, claim: Claim | None
             ) -> Verdict:
    space = problem.space
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
    if not isinstance(target, CostUnderBudget) or not problem.diagnose:
        return None
    space = problem.space
    feasible = smallest_feasible_budget(problem, options, deadline)
    return budget_infeasible_error(f"{space.graph.name} on {space.hw.name}, dynamic DRAM", target.budget, feasible,
                                   space.store_all.dynamic_dram_peak_bytes, 1, " bytes")


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
        "latency_overhead": None if measured is None else measured.latency_cycles / base.latency_cycles - 1,
        "energy_overhead": None if measured is None else measured.energy_pj / base.energy_pj - 1,
        "choices": counts if decisions is not None else None,
        "residency": None if decisions is None else residency,
        "recompute_groups": None if decisions is None else [list(g) for g in decisions.groups],
    }


def _space(problem: CheckpointProblem, proposal: Proposal[Decisions]) -> str:
    stacks = problem.space.stacks
    fused = sum(1 for ops, _ in stacks if len(ops) > 1)
    steps = (f"the fixed fusion partition ({len(stacks)} stacks, {fused} fused), run serially" if fused else
             "the fixed default allocation, unfused ops run serially in the reference order")
    return (f"checkpoint plans of {steps}; per saved activation DRAM, on chip or recompute; fused recomputation "
            f"chains of up to {MAX_GROUP_OPS} ops")


def _unit(problem: CheckpointProblem, target: CheckpointTarget) -> str:
    if isinstance(target, MinimumPeak):
        return "bytes"
    return {"latency": "cycles", "energy": "pJ"}.get(problem.weights.name, "weighted cycles + pJ")


def checkpoint_family(ga: GAConfig | None = None) -> Family:
    """The family with its methods; `ga` fixes the GA's settings (default: MONET's, seeded with the
    solve's seed)."""
    methods = registry(
        Method("cpsat", _cpsat, MethodKind.EXACT, "exact CP-SAT model (warm-started)"),
        Method("ga", _ga(ga), MethodKind.SEARCH, "MONET's NSGA-II over DRAM / recompute / on-chip genes"),
        Method("greedy", _greedy, MethodKind.SEARCH, "Chen's budget sweep"),
        *(Method(rule, _rule(rule), MethodKind.RULE, f"the fixed {rule} plan") for rule in RULES))
    return Family("checkpoint", methods, _referee, _space, _describe, diagnose=_diagnose, objective_unit=_unit,
                  problem_name=lambda problem: f"{problem.space.graph.name}@{problem.space.hw.name}")


CHECKPOINT = checkpoint_family()
METHODS = tuple(CHECKPOINT.methods)


def solve_checkpoint(space: CheckpointSpace, weights: CostWeights, budget_bytes: int, method: str,
                     options: SolverOptions, ga_config: GAConfig | None = None) -> Result[Decisions]:
    """`solve()` of the checkpoint family: least weighted cost with the dynamic DRAM peak <= budget_bytes."""
    return solve(checkpoint_family(ga_config), CheckpointProblem(space, weights), CostUnderBudget(budget_bytes),
                 method, options)
