"""Feasibility first (formulations/checkpointing.md, section 2): a schedule within a budget that
no warm-start heuristic fits, or else the schedule of least memory above it.

The stage model with a soft budget (`cpsat.least_excess_cpsat`: each stage may exceed the budget,
least total excess first, least cost second) starts from the warm-start heuristics' schedule of
least excess (store-all at worst), whose stage form is a complete hint, so the search improves a
schedule from its first second instead of looking for one. Values
are first restricted to a short horizon after their last direct reader (`cpsat.stage_horizon`):
the model is a fraction of the exact one and its search converges many times faster (250-node
layered DAG at 80 %: a schedule in 5-14 s with a horizon of 10 stages, none in 60 s with the
exact model). When the restricted model proves that its space holds no schedule within the budget, the
horizon doubles, up to the exact model, whose proof means that no schedule fits at all. Above
FEASIBILITY_MODEL_PAIRS pairs the model is solved by windows of consecutive stages (`lower_excess`).
"""

from __future__ import annotations

from collections.abc import Sequence

from monet_opt.families.remat.cpsat import band_pairs, least_excess_cpsat, stage_horizon
from monet_opt.families.remat.lns import WINDOW_STAGES, solve_window, spliced, window_firsts
from monet_opt.families.remat.problem import (
    RematProblem, ScheduleEvaluation, evaluate_schedule, memory_excess, memory_levels,
)
from monet_opt.families.remat.stages import sequence_to_stages, stages_to_sequence
from monet_opt.solving.common import Deadline, SolverOptions, SolveStatus

FIRST_HORIZON_STAGES = 10
"""The first horizon of the soft model (stages after a value's last direct reader). 250-node
layered DAG at 80 %: horizons of 0 and 5 stages hold no schedule within the budget (proven in 1 s
and 7 s), 10 stages gives one in 5-14 s (four runs), 20 in 23 s, 30 in 31 s. The 1000-node one
needs more than 10 (`formulations/checkpointing.md`, section 2)."""
FEASIBILITY_MODEL_PAIRS = 12_000
"""Largest soft model (pairs) solved whole; above, by windows of about this many pairs."""


def least_excess_schedule(problem: RematProblem, budget: int, start: Sequence[int], options: SolverOptions,
                          deadline: Deadline) -> tuple[list[int], bool]:
    """(schedule, proven): the first schedule found within `budget`, or else the one of least memory
    excess found by the deadline (`start`, a schedule in the stage form, at worst); `proven` when
    the exact soft model proves that no schedule fits the budget."""
    schedule = list(start)
    excess = memory_excess(problem, schedule, evaluate_schedule(problem, schedule), budget)
    horizon: int | None = FIRST_HORIZON_STAGES
    exact_pairs = band_pairs(problem)
    while excess > 0 and not deadline.expired():
        pairs = band_pairs(problem, horizon)
        if pairs >= exact_pairs:
            horizon, pairs = None, exact_pairs
        if pairs > FEASIBILITY_MODEL_PAIRS:
            stages = max(2, problem.n * FEASIBILITY_MODEL_PAIRS // pairs)
            return lower_excess(problem, budget, schedule, options, deadline, stages, horizon), False
        found, stats = least_excess_cpsat(problem, budget, schedule, options, deadline, horizon)
        if found is not None:
            replay = evaluate_schedule(problem, found)
            found_excess = memory_excess(problem, found, replay, budget)
            if replay.valid and found_excess < excess:
                schedule, excess = found, found_excess
        if stats.status is not SolveStatus.INFEASIBLE:
            break  # out of time
        if horizon is None:
            return schedule, True  # the exact model: no schedule fits the budget
        horizon *= 2  # the restricted space holds no schedule within the budget (proven)
    return schedule, False


def lower_excess(problem: RematProblem, budget: int, schedule: Sequence[int], options: SolverOptions,
                 deadline: Deadline, window_stages: int = WINDOW_STAGES,
                 horizon_window: int | None = None) -> list[int]:
    """The feasibility phase's search by windows: from `schedule` (stage form, above `budget`),
    a schedule with less memory above the budget (`memory_excess`). Each window is solved by the
    stage model with a soft budget (total excess of its stages first, recomputation cost second);
    only windows holding a stage above the budget are visited, most excess first; a pass that
    lowers nothing doubles the window. Stops at the first schedule within the budget, or at the
    deadline, and returns the schedule of least excess found. `horizon_window`: values live at
    most this many stages after their last direct reader (`cpsat.stage_horizon`; None: exact)."""
    n = problem.n
    recompute, kept = sequence_to_stages(problem, schedule)
    sequence = stages_to_sequence(recompute)
    replay = evaluate_schedule(problem, sequence)
    excess = memory_excess(problem, sequence, replay, budget)
    size = max(2, min(window_stages, n - 1))
    horizon = None if horizon_window is None else stage_horizon(problem, horizon_window, sequence)
    while excess > 0 and not deadline.expired():
        over = _stage_excess(problem, sequence, replay, budget)
        firsts = [a for a in window_firsts(n, size) if any(over[a:a + size])]
        firsts.sort(key=lambda a: -sum(over[a:a + size]))
        gained = False
        for first in firsts:
            if deadline.expired() or excess == 0:
                break
            stop = min(n, first + size)
            answer = solve_window(problem, budget, recompute, kept, first, stop, options, deadline,
                                   soft_budget=True, horizon=horizon)
            if answer is None:
                continue
            trial = spliced(recompute, first, answer)
            trial_replay = evaluate_schedule(problem, trial)
            trial_excess = memory_excess(problem, trial, trial_replay, budget)
            if trial_replay.valid and trial_excess < excess:
                recompute, kept = sequence_to_stages(problem, trial)
                sequence, replay, excess, gained = trial, trial_replay, trial_excess, True
                if horizon_window is not None:  # the horizon extends to the schedule's own stages
                    horizon = stage_horizon(problem, horizon_window, sequence)
        if not gained:
            if size >= n - 1:
                break
            size = min(n - 1, 2 * size)
    return sequence


def _stage_excess(problem: RematProblem, sequence: Sequence[int], replay: ScheduleEvaluation,
                  budget: int) -> list[int]:
    """Per stage of a stage-form `sequence` (its recomputations, then its node): the memory above
    `budget` summed over its steps."""
    over = [0] * problem.n
    stage_of_position, stage = [], 0
    for v in sequence:  # recomputations are of earlier nodes; node `stage` ends its stage
        stage_of_position.append(stage)
        stage += v == stage
    for position, level in enumerate(memory_levels(problem, sequence, replay)):
        over[stage_of_position[position]] += max(0, level - budget)
    return over
