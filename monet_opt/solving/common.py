"""What every method of every family shares: options, the wall-clock deadline and solve statistics.
How a CP-SAT model is run is in `cpsat_runner.py` (imported only by the CP-SAT models)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from google.protobuf import text_format
from ortools.sat import sat_parameters_pb2

from monet_opt.errors import InputError


LARGEST_VALUE = 1e15
"""Largest cost, size or energy an abstract instance may give (after scaling to integers, sums over a
schedule of a few thousand steps must stay within the models' 64-bit integers)."""


class SolveStatus(StrEnum):
    """What a method's answer is known to be, over the space its family names (`Result.space`)."""

    OPTIMAL = "optimal"  # proven optimal over the space searched
    FEASIBLE = "feasible"  # satisfies every constraint; a bound and gap say how far from optimal it may be
    HEURISTIC = "heuristic"  # satisfies every constraint; no bound
    INFEASIBLE = "infeasible"  # proven: no answer satisfies the constraints
    UNKNOWN = "unknown"  # no answer found within the time limit, and no proof that none exists
    VIOLATES = "violates"  # a fixed rule's answer that breaks a constraint (e.g. store-all over the budget)


@dataclass(frozen=True)
class GAConfig:
    """The settings of a genetic algorithm (`genetic.py`): population, generations, the probabilities
    of crossover and mutation, and the seed. The defaults are MONET's NSGA-II."""

    population: int = 100
    generations: int = 50
    crossover_probability: float = 0.9
    mutation_probability: float = 0.1
    seed: int = 0


DEFAULT_TIME_LIMIT_S = 60.0
"""The time limit of a solve given no deadline (`solve()` and the families' `solve_*` helpers), and
of the solving commands given no --time-limit."""


@dataclass(frozen=True, kw_only=True)
class SolverOptions:
    """Worker threads, seed, CP-SAT passthrough and GA settings: how to search, not for how long (the
    time travels as one `Deadline`, started by the command or script that sets the limit).

    With one worker, or with `deterministic`, a CP-SAT run is reproducible (deterministic mode
    interleaves the workers in fixed batches, which is much slower on these models). With several
    free-running workers (the default), a proven optimum and its bound are reproducible, but which
    of several equally good schedules is returned, and a time-limited incumbent, may vary.
    `cpsat_params`: raw `SatParameters` fields ("key:value" pairs, applied last, so they override
    the options above); `log_search`: CP-SAT's search log on stderr; `export_model`: the last CP-SAT
    model of the solve is written there (`.pb` binary, otherwise text proto) for offline study;
    `progress`: one line on stderr per improving solution; `ga`: the settings of a family's GA
    method (None: the family's default, the field's for that decision, seeded with `seed`).
    """

    workers: int = 2
    seed: int = 0
    deterministic: bool = False
    cpsat_params: tuple[tuple[str, str], ...] = ()
    log_search: bool = False
    export_model: Path | None = None
    progress: bool = False
    ga: GAConfig | None = None


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


class OutOfTime(Exception):
    """The deadline passed in the middle of a step (building a model, replaying a schedule)."""


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

    def check(self) -> None:
        """Raise OutOfTime if the deadline has passed: for loops too long to finish once it has."""
        if self.expired():
            raise OutOfTime

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


def warm_start_stats(stats: SolveStats, objective: float) -> SolveStats:
    """The stats of an answer that is the warm start because CP-SAT found nothing better in time:
    feasible with CP-SAT's bound when it has one, else heuristic (never "unknown" for an answer in
    hand), with the warm start's objective."""
    status = SolveStatus.FEASIBLE if stats.bound is not None else SolveStatus.HEURISTIC
    return replace(stats, status=status, objective=objective)


def heuristic_stats(objective: float | None, deadline: Deadline) -> SolveStats:
    """Stats of a method without a bound: its answer (if any) arrived now."""
    elapsed_s = deadline.elapsed_s()
    found = objective is not None
    incumbents = (Incumbent(elapsed_s, objective, float("nan")),) if found else ()
    return SolveStats(SolveStatus.HEURISTIC if found else SolveStatus.UNKNOWN, objective, None, elapsed_s,
                      elapsed_s if found else None, elapsed_s if found else None, incumbents)
