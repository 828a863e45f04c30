"""One entry point for checkpointing a training graph, with validation of every answer.

Every plan is simulated by the validation scheduler (serial execution): it must have no violation,
keep the dynamic DRAM peak within the budget and every local memory within its budget, and, for
CP-SAT, the simulated latency must equal the claimed one exactly and the energy within
ENERGY_RELATIVE_TOLERANCE; anything else is a bug and raises. A budget below the smallest
feasible dynamic DRAM peak raises InfeasibleError naming that peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.schedule.plan import Residency
from monet_opt.schedule.simulate import ENERGY_RELATIVE_TOLERANCE
from monet_opt.solvers.checkpoint.cpsat import min_dram_peak_cpsat, solve_checkpoint_cpsat
from monet_opt.solvers.checkpoint.heuristics import HEURISTICS, fits, run_checkpoint_ga, run_heuristic
from monet_opt.solvers.checkpoint.space import CheckpointSpace, Decisions, Evaluation, Objective
from monet_opt.solvers.common import SolverOptions, SolveStats, SolveStatus
from monet_opt.solvers.genetic import GAConfig

METHODS = ("cpsat", "ga") + HEURISTICS


@dataclass(frozen=True)
class CheckpointResult:
    method: str
    objective: Objective
    budget_bytes: int
    decisions: Decisions | None
    evaluation: Evaluation | None  # the simulation of the plan
    stats: SolveStats
    validated: bool
    store_all: Evaluation

    def to_dict(self, space: CheckpointSpace) -> dict[str, Any]:
        e, base = self.evaluation, self.store_all
        counts = {r.value: 0 for r in Residency}
        for a in space.decisions:
            counts[(self.decisions.residency.get(a, Residency.DRAM) if self.decisions else Residency.DRAM).value] += 1
        return {
            "workload": space.graph.name,
            "hardware": space.hw.name,
            "method": self.method,
            "objective_kind": self.objective.name,
            "status": self.stats.status.value,
            "objective": None if e is None else e.objective(self.objective),
            "bound": self.stats.bound,
            "gap": self.stats.gap,
            "latency_cycles": None if e is None else e.latency_cycles,
            "energy_pj": None if e is None else e.energy_pj,
            "peak_memory": None if e is None else e.dynamic_dram_peak_bytes,
            "peak_memory_bytes": None if e is None else dict(e.simulation.peak_memory_bytes),
            "budget": self.budget_bytes,
            "store_all": {"latency_cycles": base.latency_cycles, "energy_pj": base.energy_pj,
                          "peak_memory": base.dynamic_dram_peak_bytes},
            "latency_overhead": None if e is None else e.latency_cycles / base.latency_cycles - 1,
            "energy_overhead": None if e is None else e.energy_pj / base.energy_pj - 1,
            "solve_time_s": self.stats.solve_time_s,
            "time_to_first_s": self.stats.time_to_first_s,
            "time_to_best_s": self.stats.time_to_best_s,
            "validated": self.validated,
            "choices": counts,
            "residency": None if self.decisions is None else
            {a: self.decisions.residency.get(a, Residency.DRAM).value for a in space.decisions},
            "recompute_groups": None if self.decisions is None else [list(g) for g in self.decisions.groups],
            "incumbents": [{"time_s": i.time_s, "objective": i.objective} for i in self.stats.incumbents],
        }


def infeasible_error(space: CheckpointSpace, budget_bytes: int, options: SolverOptions) -> InfeasibleError:
    decisions, stats = min_dram_peak_cpsat(space, options)
    achieved = space.evaluate(decisions).dynamic_dram_peak_bytes if decisions is not None else None
    lowest = int(stats.bound) if stats.bound is not None else 0
    if achieved is not None and stats.status is SolveStatus.OPTIMAL:
        what = f"the smallest feasible budget is {achieved} bytes, {achieved - budget_bytes} above it"
    elif achieved is not None:
        what = f"the smallest feasible budget is between {lowest} and {achieved} bytes"
    else:
        what = f"the smallest feasible budget is at least {lowest} bytes"
    return InfeasibleError(
        f"{space.graph.name} on {space.hw.name}: activation budget {budget_bytes} bytes is infeasible: {what} "
        f"(store-all needs {space.store_all.dynamic_dram_peak_bytes})")


def solve_checkpoint(space: CheckpointSpace, objective: Objective, budget_bytes: int, method: str,
                     options: SolverOptions, ga_config: GAConfig | None = None) -> CheckpointResult:
    """Run `method` with the dynamic DRAM peak bounded by `budget_bytes` and validate its plan."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if budget_bytes < 0:
        raise InfeasibleError(f"activation budget {budget_bytes} bytes is negative")
    claimed = None
    if method == "cpsat":
        hint = best_heuristic(space, objective, budget_bytes)
        decisions, claimed, stats = solve_checkpoint_cpsat(space, objective, budget_bytes, options, hint)
        if stats.status is SolveStatus.INFEASIBLE:
            raise infeasible_error(space, budget_bytes, options)
    elif method == "ga":
        decisions, _, stats, _ = run_checkpoint_ga(space, objective, budget_bytes, ga_config or GAConfig(seed=options.seed))
    else:
        decisions, _, stats = run_heuristic(space, method, objective, budget_bytes)
    if decisions is None:
        return CheckpointResult(method, objective, budget_bytes, None, None, stats, False, space.store_all)
    evaluation = space.evaluate(decisions)
    if method != "cpsat" and not fits(space, evaluation, budget_bytes):  # a fixed heuristic over budget
        return CheckpointResult(method, objective, budget_bytes, decisions, evaluation,
                                SolveStats(SolveStatus.UNKNOWN, None, None, stats.solve_time_s, None, None, ()),
                                False, space.store_all)
    problems = [f"{v.kind}: {v.message}" for v in evaluation.simulation.violations]
    if evaluation.dynamic_dram_peak_bytes > budget_bytes:
        problems.append(f"dynamic DRAM peak {evaluation.dynamic_dram_peak_bytes} > budget {budget_bytes}")
    if evaluation.local_overflow_bytes:
        problems.append(f"a local memory is {evaluation.local_overflow_bytes} bytes over its budget")
    if claimed is not None:
        if claimed[0] != evaluation.latency_cycles:
            problems.append(f"latency: claimed {claimed[0]}, simulated {evaluation.latency_cycles}")
        if not math.isclose(claimed[1], evaluation.energy_pj, rel_tol=ENERGY_RELATIVE_TOLERANCE):
            problems.append(f"energy: claimed {claimed[1]}, simulated {evaluation.energy_pj}")
    if problems:
        raise RuntimeError(f"bug: {method} returned a checkpoint plan the simulator rejects: {'; '.join(problems[:3])}")
    if method == "cpsat":  # report the simulated objective (the model rounds each step's weighted cost)
        stats = SolveStats(stats.status, evaluation.objective(objective), stats.bound, stats.solve_time_s,
                           stats.time_to_first_s, stats.time_to_best_s, stats.incumbents)
    return CheckpointResult(method, objective, budget_bytes, decisions, evaluation, stats, True, space.store_all)


def best_heuristic(space: CheckpointSpace, objective: Objective, budget_bytes: int) -> Decisions | None:
    """The cheapest heuristic plan within the budget (the CP-SAT warm start), or None."""
    best: tuple[float, Decisions] | None = None
    for method in HEURISTICS:
        decisions, evaluation, _ = run_heuristic(space, method, objective, budget_bytes)
        if decisions is not None and fits(space, evaluation, budget_bytes):
            cost = evaluation.objective(objective)
            if best is None or cost < best[0]:
                best = (cost, decisions)
    return None if best is None else best[1]
