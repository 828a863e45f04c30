"""The rematerialisation family: abstract graphs (`RematProblem`), schedules as payloads, and the
schedule evaluator as referee.

Every schedule is replayed by `evaluate_schedule`: it must obey the rules and fit the budget, and it
must cost exactly what its method claims. Targets: `CostUnderBudget` (least total compute cost with
the peak at most the budget) and `MinimumPeak` (the smallest feasible budget). Methods:
- cpsat (exact): the stage model of `cpsat.py`, warm-started from the best heuristic; above
  `max_pairs` (stage, value) pairs a restricted model (`restricted_window` in the JSON; never
  "optimal"); above LNS_MIN_PAIRS pairs it improves its warm start by windows (`lns.py`) instead;
  it never answers worse than its warm start (`from_warm_start`: the answer costs what the warm
  start costs, the search improved nothing, though it may have proven it optimal); when no warm start fits, a
  feasibility phase (`feasibility.py`) looks for a schedule first, which then serves as the warm
  start, or reports the smallest peak it reached, or proves that none fits. For a problem with
  `free_order`, the fixed-order model's answer then hints the free-order model of `free_order.py`
  (`order` in the JSON: which order was searched);
- milp (exact): Checkmate's MILP (`milp.py`), the reference;
- ga (search): MONET's NSGA-II over keep bits;
- greedy (search): Chen's budget sweep, the cheapest schedule within the budget;
- sqrt, store-all, recompute-all (rules): fixed keep sets that ignore the budget.
Costs and sizes are model units (the graph's values times `cost_scale`/`size_scale`); results
are reported in the graph's own units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.families.remat.baselines import (
    evict_on_demand, greedy, peak_descent, recompute_all_but_inputs, sqrt_n, store_all,
)
from monet_opt.families.remat.cpsat import MAX_MODEL_PAIRS, band_pairs, min_peak_cpsat, solve_cpsat
from monet_opt.families.remat.feasibility import least_excess_schedule
from monet_opt.families.remat.free_order import FREE_ORDER_MAX_NODES, solve_free_order
from monet_opt.families.remat.ga import run_ga
from monet_opt.families.remat.gap_descent import PORTFOLIO, gap_descent
from monet_opt.families.remat.lns import improve
from monet_opt.families.remat.milp import solve_milp
from monet_opt.families.remat.problem import (
    RematProblem, evaluate_schedule, load_problem, memory_excess, store_all_peak,
)
from monet_opt.families.remat.stages import sequence_to_stages, stages_to_sequence
from monet_opt.io import file_beside
from monet_opt.report.answer import remat_lines
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import (
    Deadline, GAConfig, Incumbent, OutOfTime, SolverOptions, SolveStats, SolveStatus, heuristic_stats,
)
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, Family, FeasibleBudget, InstanceFormat, Measurement, Method, MethodKind, MinimumPeak,
    Proposal, Result, Verdict, budget_infeasible_error, objective_disagreement, registry, solve,
)

RematTarget = CostUnderBudget | MinimumPeak
WARM_START_SHARE = 0.25
"""The warm start's share of CP-SAT's time limit (model building and the solve get the rest)."""
Schedule = tuple[int, ...]
SPACE = "frontier-advancing schedules (first executions in the graph's reference order)"
FREE_SPACE = ("schedules with first executions in any topological order (between two first executions, "
              "each recomputed value runs once, in the reference order)")
LNS_MIN_PAIRS = 50_000
"""Above this many (stage, value) pairs the exact model finds nothing better than its warm start
within minutes (ResNet-50's training graph, 62k pairs: nothing in 60 s; the 500-node layered DAG,
102k: its first schedule after 130 s), so cpsat improves the warm start by windows (`lns.py`)."""
FIXED_ORDER_SHARE = 0.3
"""With the order free: the fixed-order model's share of the time left after the warm start (its
optimum is the free-order model's hint)."""


def searches_free_order(problem: RematProblem) -> bool:
    """Whether cpsat searches the free-order space (the problem asks for it)."""
    return problem.free_order


def default_order(problem: RematProblem) -> str:
    """The order searched when none is asked for: free where the free-order model stays tractable
    (at most FREE_ORDER_MAX_NODES nodes), else fixed."""
    return "free" if problem.n <= FREE_ORDER_MAX_NODES else "fixed"


def local_lower_bound(problem: RematProblem) -> int:
    """No schedule peaks below max_v (size(v) + sizes of v's inputs): they are all live when v runs."""
    return max(problem.size[v] + sum(problem.size[p] for p in problem.preds[v]) for v in range(problem.n))


def best_heuristic(problem: RematProblem, budget: int, deadline: Deadline | None = None) -> list[int] | None:
    """The cheapest of store-all, sqrt(n) and greedy schedules within the budget (a warm start)."""
    candidates = [store_all(problem)]
    try:
        candidates.append(sqrt_n(problem, deadline))
    except OutOfTime:
        return _cheapest_within(problem, budget, candidates)
    candidates.append(greedy(problem, budget, deadline=deadline))
    return _cheapest_within(problem, budget, [s for s in candidates if s is not None])


def _cheapest_within(problem: RematProblem, budget: int, candidates: list[list[int]]) -> list[int] | None:
    replays = [(evaluate_schedule(problem, s), s) for s in candidates]
    fitting = [(r.cost, s) for r, s in replays if r.peak <= budget]
    return min(fitting, key=lambda pair: pair[0])[1] if fitting else None


def _fitting_stage_form(problem: RematProblem, budget: int, schedule: Sequence[int] | None) -> list[int] | None:
    """The schedule in the stage form when that still fits the budget (where the search by windows
    can start from it), else None."""
    if schedule is None:
        return None
    form = in_stage_form(problem, schedule)
    return form if evaluate_schedule(problem, form).peak <= budget else None


def in_stage_form(problem: RematProblem, schedule: Sequence[int]) -> list[int]:
    """The schedule with each stage's recomputations in index order, the form the CP-SAT model
    writes (`stages.py`); its peak may differ from the original's."""
    recompute, _ = sequence_to_stages(problem, schedule)
    return stages_to_sequence(recompute)


def warm_start(problem: RematProblem, budget: int, seed: int, deadline: Deadline) -> tuple[list[int] | None, list[int]]:
    """(hint, closest): CP-SAT's hint, the cheapest schedule within the budget of the use-gap
    descents (`gap_descent.PORTFOLIO`), evict-on-demand, store-all, sqrt(n), Chen's greedy sweep and
    the peak descent, or else of a short GA (None when nothing fits); and the schedule of least
    memory above the budget among them, in the stage form (the feasibility phase's start when
    nothing fits). Fastest first: a use-gap descent takes 0.1-1 s on the 1000-node layered DAG and
    2-6 s on the public one of 1000 nodes, evict-on-demand 0.2 s on ResNet-50's training graph and
    4-30 s at 1000 nodes, the greedy sweep 12-20 s there, the peak descent 2-4 s at 250 nodes and
    10-350 s above, so on the largest graphs the last ones often meet the deadline and add nothing.
    Each schedule is taken in CP-SAT's stage form when that still fits (the model accepts it as it
    is). Every part stops at the deadline."""
    makers = [lambda: store_all(problem)]
    makers += [lambda config=config: gap_descent(problem, budget, config, deadline)[0] for config in PORTFOLIO]
    makers += [lambda: evict_on_demand(problem, budget, deadline), lambda: sqrt_n(problem, deadline),
               lambda: greedy(problem, budget, deadline=deadline),
               lambda: peak_descent(problem, budget, deadline=deadline)]
    fitting: list[tuple[int, int, list[int]]] = []  # (cost, 0 for the stage form else 1, schedule)
    closest: tuple[int, list[int]] | None = None  # (memory excess, stage form)
    for make in makers:
        if deadline.expired() and closest is not None:
            break
        try:
            schedule = make()
        except OutOfTime:
            break
        if schedule is None:
            continue
        for rank, form in enumerate((in_stage_form(problem, schedule), list(schedule))):
            replay = evaluate_schedule(problem, form)
            if replay.peak <= budget:
                fitting.append((replay.cost, rank, form))
            if rank == 0:
                excess = memory_excess(problem, form, replay, budget)
                if closest is None or excess < closest[0]:
                    closest = (excess, form)
    assert closest is not None  # store-all runs first, whatever the deadline
    if fitting:
        return min(fitting, key=lambda entry: entry[:2])[2], closest[1]
    hint, _, _ = run_ga(problem, budget, GAConfig(population=40, generations=20, seed=seed), deadline)
    return hint, closest[1]


def _answer(schedule: Sequence[int] | None, claimed: float | None, stats: SolveStats,
            report: dict[str, Any] | None = None) -> Proposal[Schedule]:
    return Proposal(None if schedule is None else tuple(schedule), Claim(objective=claimed), stats,
                    {"order": "fixed", **(report or {})})


def _budget(target: RematTarget, method: str) -> int:
    if not isinstance(target, CostUnderBudget):
        raise InputError(f"remat: method {method!r} minimises cost under a budget; minimum peak is cpsat's or ga's")
    return target.budget


def _cpsat(max_pairs: int):
    def run(problem: RematProblem, target: RematTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Schedule]:
        """Exact stage model with the best heuristic as hint (see the module docstring)."""
        free = searches_free_order(problem)
        order = {"order": "free" if free else "fixed"}
        if isinstance(target, MinimumPeak):
            if free:
                schedule, stats = solve_free_order(problem, None, options, deadline)
            else:
                schedule, stats = min_peak_cpsat(problem, options, deadline, max_pairs)
            # the replayed peak is the answer (the stage model's accounting may round it up)
            return _answer(schedule, None, stats, order)
        hint, closest = warm_start(problem, target.budget, options.seed, deadline.share(WARM_START_SHARE))
        warm_cost = None if hint is None else evaluate_schedule(problem, hint).cost
        feasibility: dict[str, Any] = {}
        proven_infeasible = None
        if hint is None and not free:
            lowest, proven = least_excess_schedule(problem, target.budget, closest, options, deadline)
            replay = evaluate_schedule(problem, lowest)
            smallest = min(replay.peak, store_all_peak(problem))  # of the schedules found
            feasibility = {"feasibility_phase": True, "smallest_budget_found": smallest / problem.size_scale}
            if proven:
                proven_infeasible = SolveStats(SolveStatus.INFEASIBLE, None, None, deadline.elapsed_s(), None, None, ())
            elif replay.peak <= target.budget:
                hint, warm_cost = lowest, replay.cost  # a warm start from here on
        window = None
        if proven_infeasible is not None:
            schedule, stats = None, proven_infeasible
        elif free:
            fixed = replace(problem, free_order=False)
            fixed_schedule, _, _ = solve_cpsat(fixed, target.budget, options, deadline.share(FIXED_ORDER_SHARE), hint,
                                               max_pairs)
            if fixed_schedule is not None and (warm_cost is None or
                                               evaluate_schedule(problem, fixed_schedule).cost < warm_cost):
                hint, warm_cost = fixed_schedule, evaluate_schedule(problem, fixed_schedule).cost
            schedule, stats = solve_free_order(problem, target.budget, options, deadline, hint)
        elif band_pairs(problem) > LNS_MIN_PAIRS and (start := _fitting_stage_form(problem, target.budget, hint)):
            schedule, history = improve(problem, target.budget, start, options, deadline)
            trivial = float(sum(problem.cost))  # every node runs once: a bound valid for every schedule
            incumbents = tuple(Incumbent(t, float(c), trivial) for t, c in history)
            cost = evaluate_schedule(problem, schedule).cost
            stats = SolveStats(SolveStatus.FEASIBLE, cost, trivial, deadline.elapsed_s(),
                               incumbents[0].time_s if incumbents else None,
                               incumbents[-1].time_s if incumbents else None, incumbents)
            order["lns_improvements"] = len(history)
        else:
            schedule, stats, window = solve_cpsat(problem, target.budget, options, deadline, hint, max_pairs)
        found_cost = None if schedule is None else evaluate_schedule(problem, schedule).cost
        if warm_cost is not None and (found_cost is None or warm_cost < found_cost):
            # CP-SAT found nothing better in time (or, with the order free, a search whose space turned out
            # narrower than the fixed order's answer): the warm start, with CP-SAT's bound where it holds
            schedule, found_cost = hint, warm_cost
            bound = stats.bound if stats.bound is not None and stats.bound <= warm_cost else None
            status = SolveStatus.FEASIBLE if bound is not None else SolveStatus.HEURISTIC
            stats = SolveStats(status, warm_cost, bound, stats.solve_time_s, None, None, stats.incumbents)
        from_warm_start = warm_cost is not None and found_cost == warm_cost  # the search improved nothing
        report = {**order, **feasibility, "restricted_window": window, "from_warm_start": from_warm_start,
                  "warm_start_cost": None if warm_cost is None else warm_cost / problem.cost_scale}
        return _answer(schedule, stats.objective, stats, report)
    return run


def _milp(problem: RematProblem, target: RematTarget, options: SolverOptions, deadline: Deadline) -> Proposal[Schedule]:
    schedule, stats = solve_milp(problem, _budget(target, "milp"), options, deadline)
    return _answer(schedule, stats.objective, stats)


def _ga(problem: RematProblem, target: RematTarget, options: SolverOptions, deadline: Deadline) -> Proposal[Schedule]:
    """MONET's NSGA-II (`options.ga`, default MONET's settings seeded with the solve's seed); its
    report's `front` is the final front, [cost, peak] per schedule (reported units)."""
    budget = target.budget if isinstance(target, CostUnderBudget) else None
    schedule, stats, front = run_ga(problem, budget, options.ga or GAConfig(seed=options.seed), deadline)
    cs, ss = problem.cost_scale, problem.size_scale
    return _answer(schedule, stats.objective, stats, {"front": [[p.cost / cs, p.peak / ss] for p in front]})


def _greedy(problem: RematProblem, target: RematTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Schedule]:
    schedule = greedy(problem, _budget(target, "greedy"), deadline=deadline)
    cost = None if schedule is None else evaluate_schedule(problem, schedule).cost
    return _answer(schedule, cost, heuristic_stats(cost, deadline))


def _rule(keep_rule):
    def run(problem: RematProblem, target: RematTarget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[Schedule]:
        schedule = keep_rule(problem)
        replay = evaluate_schedule(problem, schedule)
        claimed = replay.peak if isinstance(target, MinimumPeak) else replay.cost
        return _answer(schedule, claimed, heuristic_stats(claimed, deadline))
    return run


def _referee(problem: RematProblem, target: RematTarget, schedule: Schedule, claim: Claim | None) -> Verdict:
    replay = evaluate_schedule(problem, schedule)
    violations = list(replay.problems)
    if isinstance(target, CostUnderBudget) and replay.peak > target.budget:
        violations.append(f"peak {replay.peak} is above the budget {target.budget} (model units)")
    objective = replay.peak if isinstance(target, MinimumPeak) else replay.cost
    measured = Measurement(objective, replay.peak, tuple(violations))
    return Verdict(measured, objective_disagreement(None if claim is None else claim.objective, objective))


def smallest_feasible_budget(problem: RematProblem, options: SolverOptions, deadline: Deadline,
                             max_pairs: int = MAX_MODEL_PAIRS) -> tuple[FeasibleBudget, Schedule]:
    """The minimum peak memory over all schedules (of the problem's order: free-order model when
    `searches_free_order`), by CP-SAT within the deadline (exact when proven, else bounds), and a schedule that achieves the upper end (the cheaper-peak of store-all
    and sqrt(n) when CP-SAT finds none in time, store-all alone once the time is up)."""
    if searches_free_order(problem):
        schedule, stats = solve_free_order(problem, None, options, deadline)
    else:
        schedule, stats = min_peak_cpsat(problem, options, deadline, max_pairs)
        if problem.free_order:  # a fixed-order bound says nothing about other orders
            stats = replace(stats, bound=None)
    if schedule is None:
        schedule = store_all(problem)
        try:
            candidate = sqrt_n(problem, deadline)
            if evaluate_schedule(problem, candidate).peak < store_all_peak(problem):
                schedule = candidate
        except OutOfTime:
            pass
    achieved = evaluate_schedule(problem, schedule).peak
    lowest = max(local_lower_bound(problem), int(stats.bound or 0))
    return FeasibleBudget(min(lowest, achieved), achieved), tuple(schedule)


def _diagnose(max_pairs: int):
    def diagnose(problem: RematProblem, target: RematTarget, options: SolverOptions, deadline: Deadline
                 ) -> InfeasibleError | None:
        if not isinstance(target, CostUnderBudget):
            return None
        feasible, _ = smallest_feasible_budget(problem, options, deadline, max_pairs)
        return budget_infeasible_error(problem.name, target.budget, feasible, store_all_peak(problem),
                                       problem.size_scale, "")
    return diagnose


def _describe(problem: RematProblem, target: RematTarget, schedule: Schedule | None,
              measured: Measurement | None) -> dict[str, Any]:
    return {
        "store_all_peak": store_all_peak(problem) / problem.size_scale,
        "store_all_cost": sum(problem.cost) / problem.cost_scale,
        "recomputations": None if schedule is None else len(schedule) - problem.n,
        "schedule": None if schedule is None else [problem.nodes[i] for i in schedule],
    }


def _space(problem: RematProblem, proposal: Proposal[Schedule]) -> str:
    if proposal.report.get("order") == "free":
        return FREE_SPACE
    window = proposal.report.get("restricted_window")
    if window is not None:
        return f"{SPACE}, each value kept at most {window} stages after its last direct reader (restricted model)"
    return SPACE


def _load_instance(document: Mapping[str, Any], directory: Path, source: str) -> tuple[RematProblem, CostUnderBudget]:
    """An instance file of the family: `graph: FILE` (node-link JSON or YAML, relative to the
    instance) and `budget: AMOUNT | P%` (of the store-all peak), resolved here once."""
    problem = load_problem(file_beside(directory, document["graph"], source, "graph"))
    budget = Budget.parse(str(document["budget"]), f"{source}: budget")
    return problem, CostUnderBudget(budget.resolve(store_all_peak(problem), problem.size_scale))


INSTANCE_FORMAT = InstanceFormat(frozenset({"graph", "budget"}), frozenset({"graph", "budget"}), _load_instance)


def remat_family(max_pairs: int = MAX_MODEL_PAIRS) -> Family:
    """The family with its methods; `max_pairs` the size above which CP-SAT's model is restricted."""
    methods = registry(
        Method("cpsat", _cpsat(max_pairs), MethodKind.EXACT, "exact CP-SAT stage model (warm-started)"),
        Method("milp", _milp, MethodKind.EXACT, "Checkmate's MILP (CBC or HiGHS)"),
        Method("ga", _ga, MethodKind.SEARCH, "MONET's NSGA-II over keep bits"),
        Method("greedy", _greedy, MethodKind.SEARCH, "Chen's budget sweep"),
        Method("sqrt", _rule(sqrt_n), MethodKind.RULE, "keep every ceil(sqrt(n))-th node"),
        Method("store-all", _rule(store_all), MethodKind.RULE, "no recomputation"),
        Method("recompute-all", _rule(recompute_all_but_inputs), MethodKind.RULE, "keep only the sources"))
    return Family(
        "remat", methods, _referee, _space, _describe,
        problem_name=lambda p: p.name,
        objective_unit=lambda p, t: "memory units" if isinstance(t, MinimumPeak) else "cost units",
        infeasible_on_sight=lambda p, t: isinstance(t, CostUnderBudget) and t.budget < local_lower_bound(p),
        diagnose=_diagnose(max_pairs),
        scales=lambda p, t: (p.size_scale if isinstance(t, MinimumPeak) else p.cost_scale, p.size_scale),
        answer_lines=remat_lines, instance_format=INSTANCE_FORMAT)


REMAT = remat_family()
METHODS = tuple(REMAT.methods)


def solve_remat(problem: RematProblem, budget: int, method: str, options: SolverOptions,
                ga_config: GAConfig | None = None, max_pairs: int = MAX_MODEL_PAIRS,
                deadline: Deadline | None = None) -> Result[Schedule]:
    """`solve()` of the remat family at `budget` (model units): least cost within it, by `deadline`
    (default: DEFAULT_TIME_LIMIT_S from now)."""
    family = REMAT if max_pairs == MAX_MODEL_PAIRS else remat_family(max_pairs)
    return solve(family, problem, CostUnderBudget(budget), method, replace(options, ga=ga_config or options.ga),
                 deadline)
