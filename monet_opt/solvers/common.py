"""What every exact solver and heuristic reports: status, objective, bound, gap, times, incumbents."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import StrEnum

from ortools.sat.python import cp_model


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"  # proven optimal
    FEASIBLE = "feasible"  # a solution with a gap (time limit reached)
    INFEASIBLE = "infeasible"  # proven: no solution
    UNKNOWN = "unknown"  # time limit reached before any solution or proof
    HEURISTIC = "heuristic"  # a heuristic's answer: no bound


@dataclass(frozen=True)
class SolverOptions:
    """Time limit (s), worker threads and seed of a solve.

    With one worker, or with `deterministic`, a CP-SAT run is reproducible (deterministic mode
    interleaves the workers in fixed batches, which is much slower on these models). With several
    free-running workers (the default), a proven optimum and its bound are reproducible, but which
    of several equally good schedules is returned, and a time-limited incumbent, may vary.
    """

    time_limit_s: float = 60.0
    workers: int = 2
    seed: int = 0
    deterministic: bool = False


@dataclass(frozen=True)
class Incumbent:
    time_s: float
    objective: float
    bound: float


@dataclass(frozen=True)
class SolveStats:
    status: SolveStatus
    objective: float | None
    bound: float | None
    solve_time_s: float
    time_to_first_s: float | None
    time_to_best_s: float | None
    incumbents: tuple[Incumbent, ...]

    @property
    def gap(self) -> float | None:
        """(objective - bound) / objective; 0 when proven optimal; None without both."""
        if self.status is SolveStatus.OPTIMAL:
            return 0.0
        if self.objective is None or self.bound is None:
            return None
        return (self.objective - self.bound) / self.objective if self.objective else 0.0


class IncumbentRecorder(cp_model.CpSolverSolutionCallback):
    """Records (wall time, objective, bound) at every improving CP-SAT solution."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()
        self.incumbents: list[Incumbent] = []

    def on_solution_callback(self) -> None:
        self.incumbents.append(Incumbent(time.perf_counter() - self.start, self.ObjectiveValue(), self.BestObjectiveBound()))


def cpsat_stats(solver: cp_model.CpSolver, status: int, recorder: IncumbentRecorder, scale: float = 1.0,
                offset: float = 0.0) -> SolveStats:
    """SolveStats of a finished CP-SAT solve; objective and bound mapped by x * scale + offset."""
    elapsed = time.perf_counter() - recorder.start
    mapped = tuple(Incumbent(i.time_s, i.objective * scale + offset, i.bound * scale + offset) for i in recorder.incumbents)
    kind = {cp_model.OPTIMAL: SolveStatus.OPTIMAL, cp_model.FEASIBLE: SolveStatus.FEASIBLE,
            cp_model.INFEASIBLE: SolveStatus.INFEASIBLE}.get(status, SolveStatus.UNKNOWN)
    has_solution = kind in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    return SolveStats(
        status=kind,
        objective=solver.ObjectiveValue() * scale + offset if has_solution else None,
        bound=solver.BestObjectiveBound() * scale + offset if kind is not SolveStatus.INFEASIBLE else None,
        solve_time_s=elapsed,
        time_to_first_s=mapped[0].time_s if mapped else None,
        time_to_best_s=mapped[-1].time_s if mapped else None,
        incumbents=mapped,
    )


def configure(solver: cp_model.CpSolver, options: SolverOptions, subsolvers: tuple[str, ...] = ()) -> None:
    """Apply `options`; `subsolvers` (in priority order) picks CP-SAT's full workers when there are
    fewer workers than names (by default CP-SAT's choice for small worker counts omits its LP
    bounding worker, which these models need to prove optimality)."""
    solver.parameters.max_time_in_seconds = options.time_limit_s
    solver.parameters.num_workers = options.workers
    solver.parameters.random_seed = options.seed
    solver.parameters.interleave_search = options.deterministic and options.workers > 1
    if options.workers > 1 and options.workers <= len(subsolvers):
        solver.parameters.subsolvers.extend(subsolvers[: options.workers])


def run_cpsat(model: cp_model.CpModel, options: SolverOptions, subsolvers: tuple[str, ...] = (), scale: float = 1.0,
              offset: float = 0.0) -> tuple[cp_model.CpSolver, SolveStats]:
    """Solve `model` with `options` (see `configure`), recording incumbents; the solver (for
    values, valid when stats.objective is not None) and the stats (objective and bound mapped by
    x * scale + offset)."""
    solver = cp_model.CpSolver()
    configure(solver, options, subsolvers)
    recorder = IncumbentRecorder()
    status = solver.Solve(model, recorder)
    return solver, cpsat_stats(solver, status, recorder, scale=scale, offset=offset)


def shift_times(stats: SolveStats, seconds: float) -> SolveStats:
    """The stats with every time `seconds` later: work done before the solver started (warm start,
    model building) counts as part of the method's time."""
    def later(moment: float | None) -> float | None:
        return None if moment is None else moment + seconds

    return replace(stats, solve_time_s=stats.solve_time_s + seconds, time_to_first_s=later(stats.time_to_first_s),
                   time_to_best_s=later(stats.time_to_best_s),
                   incumbents=tuple(replace(i, time_s=i.time_s + seconds) for i in stats.incumbents))


def heuristic_stats(objective: float | None, elapsed_s: float) -> SolveStats:
    incumbents = (Incumbent(elapsed_s, objective, float("nan")),) if objective is not None else ()
    return SolveStats(SolveStatus.HEURISTIC if objective is not None else SolveStatus.UNKNOWN, objective, None,
                      elapsed_s, elapsed_s if objective is not None else None, elapsed_s if objective is not None else None,
                      incumbents)
