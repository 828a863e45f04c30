"""What every method of every family shares: options, the wall-clock deadline, solve statistics, and
how a CP-SAT model is run (parameters, raw parameter passthrough, search log, model export)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from google.protobuf import text_format
from ortools.sat import sat_parameters_pb2
from ortools.sat.python import cp_model

from monet_opt.errors import InputError


class SolveStatus(StrEnum):
    """What a method's answer is known to be, over the space its family names (`Result.space`)."""

    OPTIMAL = "optimal"  # proven optimal over the space searched
    FEASIBLE = "feasible"  # satisfies every constraint; a bound and gap say how far from optimal it may be
    HEURISTIC = "heuristic"  # satisfies every constraint; no bound
    INFEASIBLE = "infeasible"  # proven: no answer satisfies the constraints
    UNKNOWN = "unknown"  # no answer found within the time limit, and no proof that none exists
    VIOLATES = "violates"  # a fixed rule's answer that breaks a constraint (e.g. store-all over the budget)


SUBSOLVERS = ("max_lp", "quick_restart", "default_lp", "core", "reduced_costs", "pseudo_costs", "no_lp")
"""CP-SAT full workers by priority when there are fewer workers than names (CP-SAT's own choice
for 2 workers omits the LP-bounding worker, which proves these models' bounds): the LP worker
proves optimality, quick restarts find solutions. A family may give its own order."""


@dataclass(frozen=True)
class SolverOptions:
    """Time limit (s, wall clock for the whole method), worker threads, seed, and CP-SAT passthrough.

    With one worker, or with `deterministic`, a CP-SAT run is reproducible (deterministic mode
    interleaves the workers in fixed batches, which is much slower on these models). With several
    free-running workers (the default), a proven optimum and its bound are reproducible, but which
    of several equally good schedules is returned, and a time-limited incumbent, may vary.
    `cpsat_params`: raw `SatParameters` fields ("key:value" pairs, applied last, so they override
    the options above); `log_search`: CP-SAT's search log on stderr; `export_model`: the last CP-SAT
    model of the solve is written there (`.pb` binary, otherwise text proto) for offline study.
    """

    time_limit_s: float = 60.0
    workers: int = 2
    seed: int = 0
    deterministic: bool = False
    cpsat_params: tuple[tuple[str, str], ...] = ()
    log_search: bool = False
    export_model: Path | None = None


def parse_cpsat_params(text: str, source: str = "--cpsat-params") -> tuple[tuple[str, str], ...]:
    """"key:value,key:value" -> pairs, each checked against CP-SAT's `SatParameters` (InputError on
    an unknown field or a value of the wrong type)."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition(":")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{source}: {item!r} is not key:value")
        pairs.append((key.strip(), value.strip()))
    try:
        text_format.Parse(" ".join(f"{k}: {v}" for k, v in pairs), sat_parameters_pb2.SatParameters())
    except text_format.ParseError as exc:
        raise InputError(f"{source}: {str(exc).splitlines()[0]}") from None
    return tuple(pairs)


@dataclass(frozen=True)
class Deadline:
    """The wall-clock end of a piece of work: `started` (time.perf_counter() seconds) + `limit_s`.
    Every part of a method (warm start, model building, solver, GA generations) asks it how much
    time is left, so that a time limit holds for the whole method."""

    started: float
    limit_s: float

    @staticmethod
    def start(limit_s: float) -> Deadline:
        return Deadline(time.perf_counter(), limit_s)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self.started

    def remaining_s(self) -> float:
        return max(0.0, self.limit_s - self.elapsed_s())

    def expired(self) -> bool:
        return self.elapsed_s() >= self.limit_s

    def share(self, fraction: float) -> Deadline:
        """A deadline that starts now and ends after `fraction` of the time this one has left."""
        return Deadline(time.perf_counter(), fraction * self.remaining_s())


@dataclass(frozen=True)
class Incumbent:
    time_s: float  # since the start of the method
    objective: float
    bound: float


@dataclass(frozen=True)
class SolveStats:
    status: SolveStatus
    objective: float | None
    bound: float | None
    solve_time_s: float  # the whole method: warm start and model building included
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


def heuristic_stats(objective: float | None, deadline: Deadline) -> SolveStats:
    """Stats of a method without a bound: its answer (if any) arrived now."""
    elapsed_s = deadline.elapsed_s()
    found = objective is not None
    incumbents = (Incumbent(elapsed_s, objective, float("nan")),) if found else ()
    return SolveStats(SolveStatus.HEURISTIC if found else SolveStatus.UNKNOWN, objective, None, elapsed_s,
                      elapsed_s if found else None, elapsed_s if found else None, incumbents)


class IncumbentRecorder(cp_model.CpSolverSolutionCallback):
    """Records (time since the deadline's start, objective, bound) at every improving solution."""

    def __init__(self, deadline: Deadline) -> None:
        super().__init__()
        self.deadline = deadline
        self.incumbents: list[Incumbent] = []

    def on_solution_callback(self) -> None:
        self.incumbents.append(Incumbent(self.deadline.elapsed_s(), self.objective_value, self.best_objective_bound))


def configure(solver: cp_model.CpSolver, options: SolverOptions, deadline: Deadline,
              subsolvers: tuple[str, ...] = SUBSOLVERS) -> None:
    """Apply `options` with the deadline's remaining time as CP-SAT's limit; with fewer workers than
    `subsolvers`, pick them in that order; raw `cpsat_params` last."""
    solver.parameters.max_time_in_seconds = deadline.remaining_s()
    solver.parameters.num_workers = options.workers
    solver.parameters.random_seed = options.seed
    solver.parameters.interleave_search = options.deterministic and options.workers > 1
    if 1 < options.workers <= len(subsolvers):
        solver.parameters.subsolvers.extend(subsolvers[: options.workers])
    solver.parameters.log_search_progress = options.log_search
    solver.parameters.log_to_stdout = False
    if options.log_search:
        solver.log_callback = lambda line: print(line, file=sys.stderr)
    if options.cpsat_params and not solver.parameters.merge_text_format(
            " ".join(f"{k}: {v}" for k, v in options.cpsat_params)):
        raise InputError(f"--cpsat-params: CP-SAT refuses {options.cpsat_params}")


def run_cpsat(model: cp_model.CpModel, options: SolverOptions, deadline: Deadline,
              subsolvers: tuple[str, ...] = SUBSOLVERS, scale: float = 1.0,
              offset: float = 0.0) -> tuple[cp_model.CpSolver, SolveStats]:
    """Solve `model` within the deadline (see `configure`), recording incumbents; the solver (for
    values, valid when stats.objective is not None) and the stats (objective and bound mapped by
    x * scale + offset; times since the deadline's start)."""
    if options.export_model is not None:
        path = Path(options.export_model)
        if not model.export_to_file(str(path)):
            raise InputError(f"--export-model {path}: could not write the model")
    solver = cp_model.CpSolver()
    configure(solver, options, deadline, subsolvers)
    recorder = IncumbentRecorder(deadline)
    status = solver.solve(model, recorder)
    mapped = tuple(Incumbent(i.time_s, i.objective * scale + offset, i.bound * scale + offset)
                   for i in recorder.incumbents)
    kind = {cp_model.OPTIMAL: SolveStatus.OPTIMAL, cp_model.FEASIBLE: SolveStatus.FEASIBLE,
            cp_model.INFEASIBLE: SolveStatus.INFEASIBLE}.get(status, SolveStatus.UNKNOWN)
    has_solution = kind in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE)
    return solver, SolveStats(
        status=kind,
        objective=solver.objective_value * scale + offset if has_solution else None,
        bound=solver.best_objective_bound * scale + offset if kind is not SolveStatus.INFEASIBLE else None,
        solve_time_s=deadline.elapsed_s(),
        time_to_first_s=mapped[0].time_s if mapped else None,
        time_to_best_s=mapped[-1].time_s if mapped else None,
        incumbents=mapped,
    )
