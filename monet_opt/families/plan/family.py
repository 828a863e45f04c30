"""The plan family: the parallel memory-safe plan of a training graph (formulations/plan.md).

Problem: a `PlanProblem` (graph, accelerator, cost weights, local budgets, optionally a fusion
partition); targets: `CostUnderBudget` (the dynamic DRAM budget, bytes) and `MinimumPeak` (the
smallest dynamic DRAM peak, which diagnoses an infeasible budget); payload: a `ParallelPlan`
(recomputed and on-chip values, core and start cycle of every task). The referee is the validation
scheduler (`schedule.check` on `ParallelPlan.to_plan`, whose start cycles are release cycles): the
claimed latency and energy (and, for cpsat, every memory's peak) must be simulated, no memory may
overflow its capacity or budget, and the dynamic DRAM peak must stay within the budget.

Methods:
- cpsat (exact over the space of `PlanProblem.space`, `cpsat.py`), warm-started from the best of
  the list scheduler, the problem's starts (`PlanProblem.starts`), the checkpoint family's heuristic
  serial plan and its exact serial plan within a share of the time (`serial.py`); when CP-SAT finds nothing better in time (or, unproven,
  something worse), the warm start with CP-SAT's bound;
- greedy (search): the memory-aware list scheduler, recomputing (or keeping on chip) the values DRAM
  holds where a task finds no room (`list_schedule.py`), or the problem's cheapest start;
- ga (search): NSGA-II over cores and residencies, each genome decoded by the list scheduler
  (`ga.py`; `SolverOptions.ga`, default MONET's settings with the solve's seed).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.families.plan.cpsat import edp_energy_unit, solve_plan_cpsat
from monet_opt.families.plan.ga import plan_ga
from monet_opt.families.plan.list_schedule import best_list_schedule
from monet_opt.families.plan.problem import ParallelPlan, PlanProblem
from monet_opt.families.plan.serial import exact_serial_warm_start, serial_warm_start
from monet_opt.model.hardware.model import DRAM
from monet_opt.report.answer import plan_lines
from monet_opt.schedule.plan import default_plan
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import SimulationResult, check, simulate
from monet_opt.solving.common import (
    Deadline, GAConfig, SolverOptions, SolveStats, SolveStatus, heuristic_stats, warm_start_stats,
)
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, Family, FeasibleBudget, Measurement, Method, MethodKind, MinimumPeak, Proposal, Verdict,
    budget_infeasible_error, registry, solve,
)

PlanTarget = CostUnderBudget | MinimumPeak
LIST_SHARE = 0.1
"""The share of the time left that the list scheduler, then the serial heuristic plan, may take for
cpsat's warm start."""
SERIAL_SHARE = 0.3
"""The share of the time left that the checkpoint family's exact serial plan of a fused partition may
take for cpsat's warm start (so that the parallel plan is never slower than the serial one it
finds)."""


def _budget(problem: PlanProblem, target: PlanTarget) -> int:
    """The target's budget; for the smallest peak, all the dynamic DRAM there is."""
    return target.budget if isinstance(target, CostUnderBudget) else problem.dynamic_dram_capacity_bytes()


def _dynamic_peak_bytes(result: SimulationResult) -> int:
    return result.peak_memory_bytes[DRAM] - result.static_dram_bytes


def _score(problem: PlanProblem, target: PlanTarget, plan: ParallelPlan) -> float:
    """The target's objective of a plan: its weighted cost by its own prices, or its simulated peak."""
    if isinstance(target, MinimumPeak):
        return _dynamic_peak_bytes(simulate(problem.graph, problem.hw, plan.to_plan(problem), problem.table,
                                            problem.local_budget_bytes))
    return problem.weights.of(*plan.cost(problem))


def _searched(problem: PlanProblem, target: PlanTarget, plan: ParallelPlan | None, deadline: Deadline
              ) -> Proposal[ParallelPlan]:
    """A search method's answer: the plan claims the latency and energy of its own start times."""
    if plan is None:
        return Proposal(None, None, heuristic_stats(None, deadline))
    return Proposal(plan, Claim(plan=PlanClaim(*plan.cost(problem))),
                    heuristic_stats(_score(problem, target, plan), deadline))


def _cheapest(problem: PlanProblem, target: PlanTarget, plans: list[ParallelPlan | None]
              ) -> tuple[float | None, ParallelPlan | None]:
    """The plan of least score among `plans` and the problem's own starts, with its score."""
    return min(((_score(problem, target, plan), plan) for plan in (*plans, *problem.starts) if plan is not None),
               key=lambda scored: scored[0], default=(None, None))


def _greedy(problem: PlanProblem, target: PlanTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[ParallelPlan]:
    return _searched(problem, target,
                     _cheapest(problem, target, [best_list_schedule(problem, _budget(problem, target), deadline)])[1],
                     deadline)


def _ga(problem: PlanProblem, target: PlanTarget, options: SolverOptions, deadline: Deadline
        ) -> Proposal[ParallelPlan]:
    config = options.ga or GAConfig(seed=options.seed)
    return _searched(problem, target, plan_ga(problem, _budget(problem, target), config, deadline), deadline)


def _cpsat(problem: PlanProblem, target: PlanTarget, options: SolverOptions, deadline: Deadline
           ) -> Proposal[ParallelPlan]:
    budget = target.budget if isinstance(target, CostUnderBudget) else None
    starts = [best_list_schedule(problem, _budget(problem, target), deadline.share(LIST_SHARE))]
    if budget is not None:
        starts.append(serial_warm_start(problem, budget, deadline.share(LIST_SHARE)))
        starts.append(exact_serial_warm_start(problem, budget, options, deadline.share(SERIAL_SHARE)))
    warm_score, warm = _cheapest(problem, target, starts)
    answer = solve_plan_cpsat(problem, budget, options, deadline, warm)
    score = None if answer.plan is None else _score(problem, target, answer.plan)
    if score is None or (warm_score is not None and answer.stats.status is not SolveStatus.OPTIMAL
                         and warm_score < score):
        # nothing found, or, unproven, worse than the warm start (its hint not completed in time)
        if warm is None or warm_score is None or answer.stats.status is SolveStatus.INFEASIBLE:
            return Proposal(None, None, answer.stats)
        stats, bound = _with_structural_bound(problem, target, warm_start_stats(answer.stats, warm_score), warm_score)
        return Proposal(warm, Claim(plan=PlanClaim(*warm.cost(problem))), stats,
                        {"from_warm_start": True, "bound_source": bound})
    assert answer.plan is not None
    _, energy = answer.plan.cost(problem)  # in pJ: the model's energies are rounded down
    claim = PlanClaim(answer.makespan_cycles, energy, answer.peaks_bytes)
    stats, bound = _with_structural_bound(problem, target, answer.stats, score)
    return Proposal(answer.plan, Claim(plan=claim), stats, {"from_warm_start": False, "bound_source": bound})


def _with_structural_bound(problem: PlanProblem, target: PlanTarget, stats: SolveStats, cost: float
                           ) -> tuple[SolveStats, str | None]:
    """Under a budget: CP-SAT's bound, or `PlanProblem.cost_bound` where that is higher (CP-SAT
    stopped early, or its relaxation is weaker), and which of the two it is; the answer is optimal
    when its `cost` (by the cost model's prices, not the model's rounded energies) meets the bound.
    The smallest peak: CP-SAT's bound alone."""
    if not isinstance(target, CostUnderBudget) or stats.objective is None:
        return stats, None if stats.bound is None else "CP-SAT's search"
    bound, what = problem.cost_bound
    if stats.bound is not None and stats.bound >= bound:
        return stats, "CP-SAT's search"
    if cost <= bound * (1 + 1e-12):  # met (the bound's float sums in another order)
        return replace(stats, bound=float(min(bound, cost)), status=SolveStatus.OPTIMAL), what
    status = SolveStatus.FEASIBLE if stats.status is SolveStatus.HEURISTIC else stats.status
    return replace(stats, bound=float(bound), status=status), what


def _referee(problem: PlanProblem, target: PlanTarget, plan: ParallelPlan, claim: Claim | None) -> Verdict:
    plan_claim = claim.plan if claim is not None and claim.plan is not None else PlanClaim()
    report = check(problem.graph, problem.hw, plan.to_plan(problem), plan_claim, problem.table,
                   limits_bytes=problem.local_budget_bytes)
    result = report.result
    dynamic = _dynamic_peak_bytes(result)
    violations = [f"{v.kind}: {v.message}" for v in result.violations]
    if isinstance(target, CostUnderBudget) and dynamic > target.budget:
        violations.append(f"dynamic DRAM peak {dynamic} bytes > budget {target.budget}")
    objective = dynamic if isinstance(target, MinimumPeak) else problem.weights.of(result.latency_cycles,
                                                                                    result.energy_pj)
    measured = Measurement(objective, dynamic, tuple(violations), result.latency_cycles, result.energy_pj, result)
    return Verdict(measured, report.disagreements)


def _diagnose(problem: PlanProblem, target: PlanTarget, options: SolverOptions, deadline: Deadline
              ) -> InfeasibleError | None:
    """A budget below the smallest dynamic DRAM peak of any plan of the space: by how much (a
    minimum-peak solve in the time left; when it proves nothing, the higher of its bound and
    `PlanProblem.task_peak_bound_bytes`)."""
    if not isinstance(target, CostUnderBudget):
        return None
    default = simulate(problem.graph, problem.hw, default_plan(problem.graph, problem.table), problem.table,
                       problem.local_budget_bytes)
    what = f"{problem.graph.name} on {problem.hw.name}, dynamic DRAM of a parallel plan"
    result = solve(PLAN, problem, MinimumPeak(), "cpsat", options, deadline, diagnose=False)
    achieved = None if result.measurement is None else int(result.measurement.peak)
    lowest = achieved if result.status is SolveStatus.OPTIMAL else max(int(result.stats.bound or 0),
                                                                          problem.task_peak_bound_bytes)
    feasible = FeasibleBudget(lowest if achieved is None else min(lowest, achieved), achieved)
    return budget_infeasible_error(what, target.budget, feasible, _dynamic_peak_bytes(default), 1, " bytes")


def _describe(problem: PlanProblem, target: PlanTarget, plan: ParallelPlan | None,
              measured: Measurement | None) -> dict[str, Any]:
    shares = {} if measured is None or measured.simulation is None else measured.simulation.core_busy_shares()
    latency = None if measured is None else measured.latency_cycles
    return {
        "workload": problem.graph.name, "hardware": problem.hw.name, "objective_kind": problem.weights.name,
        "local_budget_bytes": dict(problem.local_budget_bytes),
        "candidates": len(problem.candidates),
        "on_chip_eligible": len(problem.on_chip_eligible),
        "recomputed": None if plan is None else sorted(plan.recomputed),
        "on_chip": None if plan is None else sorted(plan.on_chip),
        "recompute_groups": None if plan is None else [list(group) for group in sorted(plan.groups)],
        "split_ops": None if plan is None else {task: list(cores) for task, cores in sorted(plan.spread.items())
                                                if len(problem.stack_ops[task]) == 1},
        "spread_stacks": None if plan is None else {task: list(cores) for task, cores in sorted(plan.spread.items())
                                                    if len(problem.stack_ops[task]) > 1},
        "core_busy_share": None if not latency else {c.name: shares.get(c.name, 0.0) for c in problem.hw.cores},
    }


def _space(problem: PlanProblem, proposal: Proposal[ParallelPlan]) -> str:
    if problem.weights.product:
        return problem.space() + f"; energies rounded down to {edp_energy_unit(problem):,} pJ per task in the model"
    energy = "; energies rounded down to whole pJ per task" if not problem.weights.latency_weight else ""
    return problem.space() + energy


def _unit(problem: PlanProblem, target: PlanTarget) -> str:
    if isinstance(target, MinimumPeak):
        return "bytes"
    return {"latency": "cycles", "energy": "pJ", "edp": "cycles x pJ"}.get(problem.weights.name,
                                                                          "weighted cycles + pJ")


PLAN: Family = Family(
    "plan",
    registry(Method("cpsat", _cpsat, MethodKind.EXACT, "exact CP-SAT model of cores, start times, recomputation and "
                    "on-chip residency under every memory (warm-started)"),
             Method("greedy", _greedy, MethodKind.SEARCH, "memory-aware list scheduler that recomputes where a task "
                    "finds no room"),
             Method("ga", _ga, MethodKind.SEARCH, "NSGA-II over cores and residencies, decoded by the list scheduler")),
    _referee, _space, _describe,
    problem_name=lambda problem: f"{problem.graph.name}@{problem.hw.name}", objective_unit=_unit,
    diagnose=_diagnose, answer_lines=plan_lines,
    infeasible_on_sight=lambda problem, target: isinstance(target, CostUnderBudget)
    and target.budget < problem.task_peak_bound_bytes)
