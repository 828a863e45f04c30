"""The solver contract: one answer type, one referee step, one `solve()` for every decision family.

A *family* (rematerialisation of abstract graphs, checkpointing of training graphs, allocation,
fusion, fusion with checkpointing: `monet_opt/families/`) declares, in one `Family` value:
- `methods`: name -> `Method`, the registry; a method is one function
  (problem, target, options, deadline) -> `Proposal` (a payload, the `Claim` it makes about it, and
  its `SolveStats`), and its `kind` says whether its answer must satisfy the constraints;
- `referee`: the family's independent judge (the schedule evaluator of abstract graphs, or the
  validation scheduler through `schedule.check` for plans), which measures a payload and lists
  where the method's claim disagrees with the measurement;
- `infeasible_on_sight`: a cheap proof that a target has no answer (a budget below a lower bound);
- `diagnose`: why a target is infeasible and by how much (the smallest feasible budget), or None
  when that cannot be shown in the time left;
- `space`: the space the methods search, named (a status is proven over that space only);
- `describe`: the family's own JSON keys, and `answer_lines` those keys as text lines;
- `instance_format`: how an instance file of the family's own is read (None: it has none).
The families are collected in a `registry.Registry`, which the CLI, instance files and the bench read.

`solve(family, problem, target, method, options, deadline)` runs the method inside the wall-clock
`Deadline` its caller started (before the warm start and the model building), and then, for every
answer:
0. a target infeasible on sight raises `InfeasibleError` with the family's diagnosis;
1. no payload: a proof of infeasibility (by the method, or by the diagnosis if time is left)
   raises `InfeasibleError`; otherwise the result says "unknown" (no answer within the time limit);
2. the referee measures the payload; any disagreement with the claim raises `SolverBug`;
3. a constraint the payload violates raises `SolverBug` for methods that promise feasibility
   (`MethodKind.EXACT`, `MethodKind.SEARCH`); a fixed rule's violation (`MethodKind.RULE`, such as
   store-all over a budget) is reported with status "violates";
4. the reported objective is the referee's measurement.
The result's JSON (`Result.to_dict`) has the keys of `SHARED_SCHEMA` for every family.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import SimulationResult
from monet_opt.solving.common import DEFAULT_TIME_LIMIT_S, Deadline, SolverOptions, SolveStats, SolveStatus

Problem = TypeVar("Problem")
Target = TypeVar("Target")
Payload = TypeVar("Payload")


class SolverBug(RuntimeError):
    """A method's answer that the referee rejects: a claim that disagrees with the measurement, or
    a constraint broken by a method that promises feasibility. Never a user error."""


class ExitCode(IntEnum):
    """The exit status of every `monet` command."""

    OK = 0  # an answer that satisfies every constraint, validated by the referee
    BUG = 1  # an internal error (SolverBug)
    INPUT = 2  # bad input: nothing was solved, nothing written
    INFEASIBLE = 3  # proven infeasible; the message names the smallest feasible budget or the reason
    NO_ANSWER = 4  # no answer that satisfies the constraints within the time limit (not proven infeasible)
    VIOLATES = 5  # the answer (an evaluated plan, a fixed rule's plan) breaks a constraint; the report says which
    INTERRUPTED = 130  # Ctrl-C (SIGINT): the work stopped, temporary files removed, nothing more written
    TERMINATED = 143  # SIGTERM, likewise


class MethodKind(StrEnum):
    EXACT = "exact"  # proves a bound; its claim is checked exactly; its answer must be feasible
    SEARCH = "search"  # heuristic or GA that looks at the constraints: its answer must be feasible
    RULE = "rule"  # a fixed rule that ignores the constraints (store-all, sqrt(n)): may violate them


@dataclass(frozen=True)
class CostUnderBudget:
    """Minimise the family's cost with the bounded memory peak at most `budget` (the problem's
    memory unit: bytes for training graphs, model units for abstract graphs)."""

    budget: int


@dataclass(frozen=True)
class MinimumPeak:
    """Minimise the bounded memory peak itself: the smallest feasible budget."""


@dataclass(frozen=True)
class Claim:
    """What a method says of its payload; None fields are not checked. `objective`: in the family's
    objective unit (integers exactly, floats within the family's tolerance); `plan`: latency,
    energy and peaks that the validation scheduler must reproduce (`schedule.check`)."""

    objective: float | None = None
    plan: PlanClaim | None = None


@dataclass(frozen=True)
class Measurement:
    """What the referee measured. `objective` in the family's objective unit; `peak`: the bounded
    memory peak in the problem's memory unit (None where nothing is bounded); `violations`: every
    constraint the payload breaks (empty: it satisfies them all)."""

    objective: float
    peak: float | None
    violations: tuple[str, ...] = ()
    latency_cycles: int | None = None
    energy_pj: float | None = None
    simulation: SimulationResult | None = None  # plans: the validation scheduler's run

    @property
    def peak_memory_bytes(self) -> Mapping[str, int] | None:
        return None if self.simulation is None else self.simulation.peak_memory_bytes


@dataclass(frozen=True)
class Verdict:
    measurement: Measurement
    disagreements: tuple[str, ...]  # claim vs measurement: each one is a bug


@dataclass(frozen=True)
class Proposal(Generic[Payload]):
    """A method's answer: the payload (None: nothing found), its claim, its statistics, and the
    method's own JSON keys (`report`, e.g. the warm start's cost)."""

    payload: Payload | None
    claim: Claim | None
    stats: SolveStats
    report: Mapping[str, Any] = field(default_factory=dict)


MethodFunction = Callable[[Any, Any, SolverOptions, Deadline], Proposal[Any]]


@dataclass(frozen=True)
class Method:
    name: str
    run: MethodFunction
    kind: MethodKind
    summary: str  # one line for --help


def never_infeasible_on_sight(problem: Any, target: Any) -> bool:
    return False


def no_diagnosis(problem: Any, target: Any, options: SolverOptions, deadline: Deadline) -> None:
    return None


def reported_as_modelled(problem: Any, target: Any) -> tuple[int, int]:
    return 1, 1


def no_answer_lines(answer: Mapping[str, Any]) -> list[str]:
    return []


@dataclass(frozen=True)
class InstanceFormat:
    """How an instance file of a family's own (`kind: <family name>`) is read by `monet solve` and
    `monet bench`: `keys` are its own keys (besides kind, name, suite, time_limit, seed), `required`
    those it must have, and `load(document, directory, source)` returns (problem, target), files
    relative to `directory`, budgets resolved once; InputError naming `source` and the key."""

    keys: frozenset[str]
    required: frozenset[str]
    load: Callable[[Mapping[str, Any], Path, str], tuple[Any, Any]]


@dataclass(frozen=True)
class Family(Generic[Problem, Target, Payload]):
    """A decision family's registry and referee (see the module docstring). `registry(...)` builds
    `methods` from a list."""

    name: str
    methods: Mapping[str, Method]
    referee: Callable[[Problem, Target, Payload, Claim | None], Verdict]
    space: Callable[[Problem, Proposal[Payload]], str]
    describe: Callable[[Problem, Target, Payload | None, Measurement | None], dict[str, Any]]
    problem_name: Callable[[Problem], str]
    objective_unit: Callable[[Problem, Target], str]
    infeasible_on_sight: Callable[[Problem, Target], bool] = never_infeasible_on_sight
    diagnose: Callable[[Problem, Target, SolverOptions, Deadline], InfeasibleError | None] = no_diagnosis
    scales: Callable[[Problem, Target], tuple[int, int]] = reported_as_modelled  # model units per reported unit
    answer_lines: Callable[[Mapping[str, Any]], list[str]] = no_answer_lines  # its JSON keys as text lines
    instance_format: InstanceFormat | None = None  # None: no instance file of its own

    def with_method(self, method: Method) -> Family[Problem, Target, Payload]:
        """This family with one more method (or one replaced): the one step that adds a method."""
        return replace(self, methods={**self.methods, method.name: method})

    def method(self, name: str) -> Method:
        if name not in self.methods:
            raise InputError(f"{self.name}: unknown method {name!r} (one of {', '.join(self.methods)})")
        return self.methods[name]


def registry(*methods: Method) -> dict[str, Method]:
    """name -> method, in the order given (the order `--help` lists them)."""
    return {m.name: m for m in methods}


@dataclass(frozen=True)
class Result(Generic[Payload]):
    """The answer of `solve()`, the same for every family."""

    family: str
    problem: str
    method: str
    target: Any
    space: str  # what `status` is proven over
    objective_unit: str
    scales: tuple[int, int]  # model units per reported unit (objective, memory); the JSON divides by them
    payload: Payload | None  # None: no answer
    measurement: Measurement | None  # the referee's; None without a payload
    stats: SolveStats  # objective restated as the referee measured it
    validated: bool  # a payload that the referee measured and that satisfies every constraint
    details: Mapping[str, Any]  # the family's and the method's own JSON keys

    @property
    def status(self) -> SolveStatus:
        return self.stats.status

    @property
    def objective(self) -> float | None:
        return None if self.measurement is None else self.measurement.objective

    @property
    def status_text(self) -> str:
        """The status with what it is proven over: "optimal over <the space's first clause>" (also
        feasible and infeasible, whose bound or proof holds over that space); the other statuses
        prove nothing."""
        if self.status in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE, SolveStatus.INFEASIBLE):
            return f"{self.status.value} over {self.space.split(';')[0]}"
        return self.status.value

    @property
    def exit_code(self) -> ExitCode:
        if self.validated:
            return ExitCode.OK
        return ExitCode.VIOLATES if self.measurement is not None else ExitCode.NO_ANSWER

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the keys of SHARED_SCHEMA (objective and memory in the reported units), then the
        family's own."""
        m, s = self.measurement, self.stats
        per_objective, per_memory = self.scales

        def reported(value: float | None, scale: int) -> float | None:
            return value if value is None or scale == 1 else value / scale

        budget = getattr(self.target, "budget", None)
        shared = {
            "family": self.family,
            "problem": self.problem,
            "method": self.method,
            "target": "minimum-peak" if isinstance(self.target, MinimumPeak) else (
                "cost-under-budget" if isinstance(self.target, CostUnderBudget) else str(self.target)),
            "status": s.status.value,
            "status_text": self.status_text,
            "space": self.space,
            "validated": self.validated,
            "exit_code": int(self.exit_code),
            "objective": None if m is None else reported(m.objective, per_objective),
            "objective_unit": self.objective_unit,
            "bound": reported(s.bound, per_objective),
            "gap": s.gap,
            "budget": reported(budget, per_memory),
            "peak_memory": None if m is None else reported(m.peak, per_memory),
            "peak_memory_bytes": None if m is None or m.peak_memory_bytes is None else dict(m.peak_memory_bytes),
            "latency_cycles": None if m is None else m.latency_cycles,
            "energy_pj": None if m is None else m.energy_pj,
            "violations": [] if m is None else list(m.violations),
            "solve_time_s": s.solve_time_s,
            "time_to_first_s": s.time_to_first_s,
            "time_to_best_s": s.time_to_best_s,
            "incumbents": [{"time_s": i.time_s, "objective": reported(i.objective, per_objective),
                            "bound": None if math.isnan(i.bound) else reported(i.bound, per_objective)}
                           for i in s.incumbents],
        }
        shadowed = sorted(set(shared) & set(self.details))
        if shadowed:
            raise SolverBug(f"{self.family} {self.method}: its own JSON keys shadow shared ones: {', '.join(shadowed)}")
        return {**shared, **self.details}


_NUMBER = {"type": ["number", "null"]}
SHARED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["family", "problem", "method", "target", "status", "status_text", "space", "validated", "exit_code",
                 "objective",
                 "objective_unit", "bound", "gap", "budget", "peak_memory", "peak_memory_bytes", "latency_cycles",
                 "energy_pj", "violations", "solve_time_s", "time_to_first_s", "time_to_best_s", "incumbents"],
    "properties": {
        "family": {"type": "string"},  # a registered family's name
        "problem": {"type": "string"},
        "method": {"type": "string"},
        "target": {"type": "string"},
        "status": {"enum": [s.value for s in SolveStatus]},
        "status_text": {"type": "string"},
        "space": {"type": "string"},
        "validated": {"type": "boolean"},
        "exit_code": {"enum": [int(c) for c in ExitCode]},
        "objective": _NUMBER,
        "objective_unit": {"type": "string"},
        "bound": _NUMBER,
        "gap": _NUMBER,
        "budget": _NUMBER,
        "peak_memory": _NUMBER,
        "peak_memory_bytes": {"type": ["object", "null"], "additionalProperties": {"type": "integer"}},
        "latency_cycles": {"type": ["integer", "null"]},
        "energy_pj": _NUMBER,
        "violations": {"type": "array", "items": {"type": "string"}},
        "solve_time_s": {"type": "number", "minimum": 0},
        "time_to_first_s": _NUMBER,
        "time_to_best_s": _NUMBER,
        "incumbents": {"type": "array", "items": {
            "type": "object", "required": ["time_s", "objective", "bound"],
            "properties": {"time_s": {"type": "number"}, "objective": {"type": "number"}, "bound": _NUMBER}}},
    },
}
"""The JSON keys every family's result has, with the same meaning everywhere (README, "Solvers: one
contract, one answer")."""


def solve(family: Family[Problem, Target, Payload], problem: Problem, target: Target, method: str,
          options: SolverOptions, deadline: Deadline | None = None, diagnose: bool = True) -> Result[Payload]:
    """Run `method` of `family` on (problem, target) and referee its answer (module docstring).
    `deadline` (default: DEFAULT_TIME_LIMIT_S from now) bounds the method's wall time; a command
    passes the one it started with, so that its own set-up counts too. `diagnose`: whether a method
    that found nothing (without a proof) has the family look for why; a caller that knows the target
    feasible (a budget sweep's heuristic columns) turns it off, as the search would only spend time."""
    chosen = family.method(method)
    deadline = deadline or Deadline.start(DEFAULT_TIME_LIMIT_S)
    if family.infeasible_on_sight(problem, target):
        raise _infeasible(family, problem, target, options, deadline, "a lower bound")
    proposal = chosen.run(problem, target, options, deadline)
    stats = replace(proposal.stats, solve_time_s=deadline.elapsed_s())
    space = family.space(problem, proposal)
    unit = family.objective_unit(problem, target)

    def result(measurement: Measurement | None, final: SolveStats, validated: bool) -> Result[Payload]:
        details = {**family.describe(problem, target, proposal.payload, measurement), **proposal.report}
        return Result(family.name, family.problem_name(problem), method, target, space, unit,
                      family.scales(problem, target), proposal.payload, measurement, final, validated, details)

    if proposal.payload is None:
        if stats.status is SolveStatus.INFEASIBLE:
            raise _infeasible(family, problem, target, options, deadline, method)
        error = None if deadline.expired() or not diagnose else family.diagnose(problem, target, _internal(options),
                                                                                   deadline)
        if error is not None:
            raise error
        return result(None, replace(stats, status=SolveStatus.UNKNOWN, objective=None), False)
    verdict = family.referee(problem, target, proposal.payload, proposal.claim)
    if verdict.disagreements:
        raise SolverBug(f"{family.name} {method}: the referee disagrees with the claim: "
                        + "; ".join(verdict.disagreements[:3]))
    measured = verdict.measurement
    if measured.violations:
        if chosen.kind is not MethodKind.RULE:
            raise SolverBug(f"{family.name} {method}: an answer that breaks a constraint: "
                            + "; ".join(measured.violations[:3]))
        return result(measured, replace(stats, status=SolveStatus.VIOLATES, objective=measured.objective, bound=None),
                      False)
    return result(measured, replace(stats, objective=measured.objective), True)


def _internal(options: SolverOptions) -> SolverOptions:
    """Options for a diagnosis solve: no progress lines and no model export (they are the user's
    solve's)."""
    return replace(options, progress=False, export_model=None)


def _infeasible(family: Family[Problem, Target, Payload], problem: Problem, target: Target, options: SolverOptions,
                deadline: Deadline, proven_by: str) -> InfeasibleError:
    """The family's diagnosis of a proven infeasibility, or a plain statement when it has none."""
    return family.diagnose(problem, target, _internal(options), deadline) or InfeasibleError(
        f"{family.problem_name(problem)}: no answer satisfies the constraints (proven by {proven_by})")


def objective_disagreement(claimed: float | None, measured: float, relative_tolerance: float = 0.0) -> tuple[str, ...]:
    """The disagreement of a claimed objective with the measured one (empty when they agree)."""
    if claimed is None or math.isclose(claimed, measured, rel_tol=relative_tolerance, abs_tol=0.0) \
            or claimed == measured:
        return ()
    return (f"objective: claimed {claimed:.10g}, measured {measured:.10g}",)


@dataclass(frozen=True)
class FeasibleBudget:
    """What a minimum-peak solve established (model units): no answer peaks below `lowest`; an
    answer with peak `achieved` exists (None: none found in the time given)."""

    lowest: int
    achieved: int | None

    @property
    def exact(self) -> bool:
        return self.achieved is not None and self.lowest == self.achieved


def budget_infeasible_error(what: str, budget: int, feasible: FeasibleBudget, store_all: int, scale: int,
                            unit: str) -> InfeasibleError | None:
    """"<what>: budget B is infeasible: the smallest feasible budget is X, D above it (store-all
    needs S)" when `feasible` proves budget < lowest; None otherwise. Values in model units, shown
    divided by `scale` with `unit` (e.g. " bytes")."""
    if feasible.lowest <= budget:
        return None

    def number(value: int) -> str:
        return f"{value / scale:g}" if scale != 1 else f"{value}"

    def shown(value: int) -> str:
        return number(value) + unit

    if feasible.exact:
        how = f"the smallest feasible budget is {shown(feasible.lowest)}, {number(feasible.lowest - budget)} above it"
    elif feasible.achieved is not None:
        how = (f"the smallest feasible budget is between {shown(feasible.lowest)} and {shown(feasible.achieved)} "
               f"(at least {number(feasible.lowest - budget)} above it)")
    else:
        how = f"the smallest feasible budget is at least {shown(feasible.lowest)}"
    return InfeasibleError(f"{what}: budget {shown(budget)} is infeasible: {how} (store-all needs {shown(store_all)})")
