"""Large-neighbourhood search over fixed-order schedules (formulations/checkpointing.md, section 2,
large instances): improve a schedule window by window with the exact stage model inside.

A window is a run of consecutive stages. Its model (`cpsat.Window`) has the stage model's variables
for those stages only; the stages before and after stay as they are: the window may keep into its
first stage only what the schedule keeps there (and the node just before), and must keep into the
stage after it exactly what the schedule keeps there. Any answer of the window model therefore
splices into the schedule without changing the memory of the other stages, and the spliced
schedule is replayed by the evaluator before it is kept (peak within the budget, cost lower).

Windows of `window_stages` stages, half-overlapping, are visited in decreasing order of the
recomputation cost they hold; a pass that improves nothing doubles the window (up to the whole
graph); the search stops at the deadline. Inside a window, values live at most
`horizon_window` stages after their last direct reader (`cpsat.stage_horizon`, extended to the
schedule's own stages, so the current schedule stays a solution): the window's model then holds
the values that can matter there rather than every value whose descendants are still to come
(1000-node layered DAG at 80 %, windows of 40 stages: 6027 to 5891 in 45 s with a horizon of 10
stages; no improvement in 45 s without one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monet_opt.families.remat.cpsat import Window, _Model, stage_horizon
from monet_opt.families.remat.problem import RematProblem, evaluate_schedule
from monet_opt.families.remat.stages import sequence_to_stages, stages_to_sequence
from monet_opt.solving.common import Deadline, OutOfTime, SolverOptions, SolveStatus
from monet_opt.solving.contract import CostUnderBudget
from monet_opt.solving.cpsat_runner import run_cpsat

WINDOW_STAGES = 40
HORIZON_STAGES = 10
WINDOW_TIME_S = 3.0  # most seconds of CP-SAT per window
SOFT_WINDOW_TIME_S = 10.0  # the same for the feasibility phase's windows (`feasibility.py`)


def improve(problem: RematProblem, budget: int, schedule: Sequence[int], options: SolverOptions,
            deadline: Deadline, window_stages: int = WINDOW_STAGES, horizon_window: int | None = HORIZON_STAGES
            ) -> tuple[list[int], list[tuple[float, int]]]:
    """A schedule at most as costly as `schedule` (a fixed-order schedule in the stage form of
    `stages.py`, within `budget`), and each improvement as (seconds since the deadline's start,
    the cost reached). `horizon_window` None: each window is the exact stage model of its stages."""
    n = problem.n
    recompute, kept = sequence_to_stages(problem, schedule)
    cost = evaluate_schedule(problem, schedule).cost
    history: list[tuple[float, int]] = []
    size = max(2, min(window_stages, n - 1))
    horizon = None if horizon_window is None else stage_horizon(problem, horizon_window, schedule)
    while not deadline.expired():
        firsts = window_firsts(n, size)
        firsts.sort(key=lambda a: -sum(problem.cost[i] for t in range(a, min(n, a + size)) for i in recompute[t]))
        gained = False
        for first in firsts:
            if deadline.expired():
                break
            stop = min(n, first + size)
            answer = solve_window(problem, budget, recompute, kept, first, stop, options, deadline, horizon=horizon)
            if answer is None:
                continue
            sequence = spliced(recompute, first, answer)
            replay = evaluate_schedule(problem, sequence)
            if replay.valid and replay.peak <= budget and replay.cost < cost:
                recompute, kept = sequence_to_stages(problem, sequence)
                if horizon_window is not None:  # the horizon extends to the schedule's own stages
                    horizon = stage_horizon(problem, horizon_window, sequence)
                cost, gained = replay.cost, True
                history.append((deadline.elapsed_s(), cost))
        if not gained:
            if size >= n - 1:
                break
            size = min(n - 1, 2 * size)
    return stages_to_sequence(recompute), history


def window_firsts(n: int, size: int) -> list[int]:
    """First stages of the half-overlapping windows of `size` stages over stages 1..n-1 (stage 0
    recomputes nothing), the last one ending at the last stage."""
    return sorted({min(first, n - size) for first in range(1, n, max(1, size // 2))})


def spliced(recompute: Sequence[set[int]], first: int, answer: Sequence[set[int]]) -> list[int]:
    """The stage-form sequence with the recomputations of stages first.. replaced by `answer`."""
    candidate = [set(r) for r in recompute]
    candidate[first:first + len(answer)] = answer
    return stages_to_sequence(candidate)


def solve_window(problem: RematProblem, budget: int, recompute: Sequence[set[int]], kept: Sequence[set[int]],
                 first: int, stop: int, options: SolverOptions, deadline: Deadline, soft_budget: bool = False,
                 horizon: Sequence[int] | None = None) -> list[set[int]] | None:
    """The recomputations of stages first..stop-1 with the rest of the schedule fixed: the cheapest
    (or, with `soft_budget`, those of least excess over the budget, then cheapest), or None when
    CP-SAT finds nothing better in its time."""
    window = Window(first, stop, frozenset(kept[first]) | {first - 1},
                    frozenset(kept[stop]) if stop < problem.n else frozenset())
    current = sum(problem.cost[i] for t in range(first, stop) for i in recompute[t])
    if current == 0 and not soft_budget:
        return None
    share = Deadline.start(min(SOFT_WINDOW_TIME_S if soft_budget else WINDOW_TIME_S, deadline.remaining_s()))
    try:
        model = _Model(problem, CostUnderBudget(budget), horizon, share, window, soft_budget)
    except OutOfTime:
        return None
    model.hint_stages(recompute, kept)
    if not soft_budget:
        model.model.add(model.recompute_cost <= current - 1)
    solver, stats = run_cpsat(model.model, replace(options, progress=False), share,  # soft: stop once no excess is left
                              stop_below=model.excess_weight if soft_budget else None)
    if stats.status not in (SolveStatus.OPTIMAL, SolveStatus.FEASIBLE):
        return None
    return [{i for i in range(t) if (t, i) in model.R and solver.value(model.R[t, i])} for t in range(first, stop)]
