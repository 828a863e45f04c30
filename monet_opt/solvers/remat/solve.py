"""One entry point for every rematerialisation method, with validation of every answer.

Each schedule a method returns is replayed by `evaluate_schedule`: it must obey the rules, fit the
budget, and (for the exact methods) cost exactly what the solver claims; anything else is a bug
and raises. A budget below the smallest feasible one raises InfeasibleError naming that budget.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monet_opt.errors import InfeasibleError
from monet_opt.solvers.common import SolverOptions, SolveStats, SolveStatus, shift_times
from monet_opt.solvers.remat.baselines import evict_on_demand, greedy, peak_descent, run_baseline, sqrt_n, store_all
from monet_opt.solvers.remat.cpsat import MAX_MODEL_PAIRS, min_peak_cpsat, solve_cpsat
from monet_opt.solvers.remat.ga import GAConfig, run_ga
from monet_opt.solvers.remat.milp import solve_milp
from monet_opt.solvers.remat.problem import RematProblem, evaluate_schedule, store_all_peak
from monet_opt.solvers.remat.stages import sequence_to_stages, stages_to_sequence

METHODS = ("cpsat", "milp", "ga", "greedy", "sqrt", "store-all", "recompute-all")
EXACT_METHODS = ("cpsat", "milp")


@dataclass(frozen=True)
class RematResult:
    method: str
    problem: RematProblem
    budget: int  # model units (original size x size_scale)
    schedule: tuple[int, ...] | None
    cost: int | None  # model units, replayed by evaluate_schedule
    peak: int | None
    stats: SolveStats
    validated: bool
    window: int | None = None  # CP-SAT on a restricted model (see solve_cpsat); None: the exact model
    from_warm_start: bool = False  # CP-SAT found nothing better than its warm start, which is the answer
    warm_start_cost: int | None = None  # CP-SAT's warm start (model units), available before the solve

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the problem's original units."""
        p = self.problem
        cs, ss = p.cost_scale, p.size_scale
        return {
            "problem": p.name,
            "method": self.method,
            "status": self.stats.status.value,
            "objective": None if self.cost is None else self.cost / cs,
            "bound": None if self.stats.bound is None else self.stats.bound / cs,
            "gap": self.stats.gap,
            "peak_memory": None if self.peak is None else self.peak / ss,
            "budget": self.budget / ss,
            "store_all_peak": store_all_peak(p) / ss,
            "store_all_cost": sum(p.cost) / cs,
            "recomputations": None if self.schedule is None else len(self.schedule) - p.n,
            "solve_time_s": self.stats.solve_time_s,
            "time_to_first_s": self.stats.time_to_first_s,
            "time_to_best_s": self.stats.time_to_best_s,
            "validated": self.validated,
            "restricted_window": self.window,
            "from_warm_start": self.from_warm_start,
            "warm_start_cost": None if self.warm_start_cost is None else self.warm_start_cost / cs,
            "incumbents": [{"time_s": i.time_s, "objective": i.objective / cs} for i in self.stats.incumbents],
            "schedule": None if self.schedule is None else [p.nodes[i] for i in self.schedule],
        }


def local_lower_bound(problem: RematProblem) -> int:
    """No schedule peaks below max_v (size(v) + sizes of v's inputs): they are all live when v runs."""
    return max(problem.size[v] + sum(problem.size[p] for p in problem.preds[v]) for v in range(problem.n))


@dataclass(frozen=True)
class FeasibleBudget:
    lowest: int  # proven: no schedule peaks below this
    achieved: int  # a schedule with this peak exists
    schedule: tuple[int, ...]

    @property
    def exact(self) -> bool:
        return self.lowest == self.achieved


def smallest_feasible_budget(problem: RematProblem, options: SolverOptions,
                             max_pairs: int = MAX_MODEL_PAIRS) -> FeasibleBudget:
    """The minimum peak memory over all schedules, by CP-SAT (exact when proven, else bounds)."""
    schedule, stats = min_peak_cpsat(problem, options, max_pairs)
    if schedule is None:  # no solution within the time limit: fall back on the heuristics' best
        schedule = min((store_all(problem), sqrt_n(problem)), key=lambda s: evaluate_schedule(problem, s).peak)
    achieved = evaluate_schedule(problem, schedule).peak
    lowest = max(local_lower_bound(problem), int(stats.bound or 0))
    return FeasibleBudget(min(lowest, achieved), achieved, tuple(schedule))


def _infeasible(problem: RematProblem, budget: int, options: SolverOptions, max_pairs: int) -> InfeasibleError:
    fb = smallest_feasible_budget(problem, options, max_pairs)
    ss = problem.size_scale
    if fb.exact:
        what = f"the smallest feasible budget is {fb.achieved / ss:g}, {(fb.achieved - budget) / ss:g} above it"
    else:
        what = (f"the smallest feasible budget is between {fb.lowest / ss:g} and {fb.achieved / ss:g} "
                f"(at least {(fb.lowest - budget) / ss:g} above it)")
    return InfeasibleError(
        f"{problem.name}: budget {budget / ss:g} is infeasible: {what} (store-all needs {store_all_peak(problem) / ss:g})"
    )


def best_heuristic(problem: RematProblem, budget: int) -> list[int] | None:
    """The cheapest of store-all, sqrt(n) and greedy schedules within the budget (a warm start)."""
    candidates = [s for s in (store_all(problem), sqrt_n(problem), greedy(problem, budget)) if s is not None]
    replays = [(evaluate_schedule(problem, s), s) for s in candidates]
    fitting = [(r.cost, s) for r, s in replays if r.peak <= budget]
    return min(fitting, key=lambda pair: pair[0])[1] if fitting else None


def in_stage_form(problem: RematProblem, schedule: Sequence[int]) -> list[int]:
    """The schedule with each stage's recomputations in index order, the form the CP-SAT model
    writes (`stages.py`); its peak may differ from the original's."""
    recompute, _ = sequence_to_stages(problem, schedule)
    return stages_to_sequence(recompute)


def warm_start(problem: RematProblem, budget: int, seed: int) -> list[int] | None:
    """CP-SAT's hint: the cheapest of the cheap heuristics, else the cheapest of evict-on-demand
    and the peak descent, else a short GA; each schedule in CP-SAT's stage form when that still
    fits the budget (then the model accepts it as it is). None when nothing fits."""
    hint = best_heuristic(problem, budget)
    if hint is None:
        fitting = []  # (cost, 0 for the stage form else 1, schedule)
        for schedule in (evict_on_demand(problem, budget), peak_descent(problem, budget)):
            if schedule is not None:
                for rank, form in enumerate((in_stage_form(problem, schedule), schedule)):
                    replay = evaluate_schedule(problem, form)
                    if replay.peak <= budget:
                        fitting.append((replay.cost, rank, form))
        hint = min(fitting, key=lambda entry: entry[:2], default=(None, None, None))[2]
    if hint is None:
        hint, _, _ = run_ga(problem, budget, GAConfig(population=40, generations=20, seed=seed))
    return hint


def solve_remat(problem: RematProblem, budget: int, method: str, options: SolverOptions,
                ga_config: GAConfig | None = None, max_pairs: int = MAX_MODEL_PAIRS) -> RematResult:
    """Run `method` at `budget` (model units) and validate its schedule. CP-SAT models above
    `max_pairs` (stage, value) pairs are restricted (`solve_cpsat`), flagged by `window`."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if budget < local_lower_bound(problem):
        raise _infeasible(problem, budget, options, max_pairs)
    window, warm, warm_cost = None, False, None
    if method == "cpsat":
        started = time.perf_counter()
        hint = warm_start(problem, budget, options.seed)
        warm_cost = None if hint is None else evaluate_schedule(problem, hint).cost
        schedule, stats, window = solve_cpsat(problem, budget, options, hint=hint, max_pairs=max_pairs)
        stats = shift_times(stats, time.perf_counter() - started - stats.solve_time_s)
        if warm_cost is not None and stats.status is not SolveStatus.OPTIMAL and (
                schedule is None or warm_cost < evaluate_schedule(problem, schedule).cost):
            # CP-SAT found nothing better in time (large models, or a hint outside its stage form):
            # the answer is the warm start, with CP-SAT's bound, flagged (status feasible, JSON
            # from_warm_start)
            schedule, warm = hint, True
            stats = SolveStats(SolveStatus.FEASIBLE, warm_cost, stats.bound, stats.solve_time_s, None, None, stats.incumbents)
    elif method == "milp":
        schedule, stats = solve_milp(problem, budget, options)
    elif method == "ga":
        schedule, stats, _ = run_ga(problem, budget, ga_config or GAConfig(seed=options.seed))
    else:
        schedule, stats = run_baseline(problem, budget, method)
    if schedule is None:
        # (a restricted min-peak model proves no more than the local bound already checked above)
        if stats.status is SolveStatus.INFEASIBLE or (
                window is None and smallest_feasible_budget(problem, options, max_pairs).lowest > budget):
            raise _infeasible(problem, budget, options, max_pairs)
        return RematResult(method, problem, budget, None, None, None, stats, False, window, warm, warm_cost)
    replay = evaluate_schedule(problem, schedule)
    claimed = stats.objective
    if not replay.valid or replay.peak > budget or (method in EXACT_METHODS and replay.cost != claimed):
        raise RuntimeError(
            f"bug: {method} returned a schedule that the evaluator rejects: problems {replay.problems[:2]}, "
            f"peak {replay.peak} vs budget {budget}, cost {replay.cost} vs claimed {claimed}"
        )
    return RematResult(method, problem, budget, tuple(schedule), replay.cost, replay.peak, stats, True, window, warm, warm_cost)
