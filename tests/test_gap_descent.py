"""The use-gap descent (`families/remat/gap_descent.py`): a hand-made case, its memory bound against
the replay on random DAGs, and the 1000-node layered DAG at 80 % where no other heuristic fits."""

import math
import random

from monet_opt.families.remat.gap_descent import PORTFOLIO, gap_descent
from monet_opt.families.remat.problem import RematProblem, evaluate_schedule, store_all_peak
from monet_opt.studies.generate import layered_dag
from remat_reference import brute_force
from test_remat import random_dag


def stage_levels(problem: RematProblem, sequence: list[int]) -> list[int]:
    """Per stage of a stage-form sequence: the sizes of the copies live at some step of it (a copy
    lives from its execution to its last use, by the evaluator)."""
    stage_of, stage = [], 0
    for v in sequence:
        stage_of.append(stage)
        stage += v == stage
    levels = [0] * problem.n
    for start, end in evaluate_schedule(problem, sequence).lifetimes:
        for s in range(stage_of[start], stage_of[end] + 1):
            levels[s] += problem.size[sequence[start]]
    return levels


def test_a_large_input_is_dropped_and_recomputed_where_it_is_read_again():
    """v0 (size 10) is read by v1 and, four stages later, by v4; v2 (size 10) lies in between.
    Store-all peaks at 21 (v0 + v1 + v2, then v0 + v2 + v3); within 12, v0 is dropped after v1
    and recomputed (it has no inputs) just before v4: peak 11 until stage 4, then v0 + v3 + v4 =
    12; cost: every node once plus v0 again."""
    problem = RematProblem("hand", tuple(f"v{i}" for i in range(5)), ((), (0,), (1,), (2,), (0, 3)),
                           (1, 1, 1, 1, 1), (10, 1, 10, 1, 1))
    assert store_all_peak(problem) == 21
    schedule, level = gap_descent(problem, 12)
    replay = evaluate_schedule(problem, schedule)
    assert schedule == [0, 1, 2, 3, 0, 4] and (replay.peak, level, replay.cost) == (12, 12, 6)


def test_the_level_is_the_replayed_stage_memory_and_fitting_schedules_cost_at_least_the_optimum():
    """On random DAGs of 6-10 nodes at 75-95 % of store-all, with every configuration of the
    portfolio: every schedule obeys the rules; the descent's highest level equals the highest
    per-stage memory rebuilt from the evaluator's lifetimes (so it bounds the replayed peak); a
    schedule it reports within the budget is, and costs no less than the brute-force optimum. Each
    configuration fits 37-38 of the 52 feasible budgets (a heuristic: evict-on-demand fits 45)."""
    rng = random.Random(7)
    fitted = dict.fromkeys(PORTFOLIO, 0)
    feasible = 0
    for _ in range(40):
        problem = random_dag(rng, rng.randint(6, 10))
        for fraction in (0.75, 0.85, 0.95):
            budget = int(fraction * store_all_peak(problem))
            optimum = brute_force(problem.preds, problem.cost, problem.size, budget)
            feasible += optimum < math.inf
            for config in PORTFOLIO:
                schedule, level = gap_descent(problem, budget, config)
                replay = evaluate_schedule(problem, schedule)
                assert replay.valid, replay.problems
                assert level == max(stage_levels(problem, schedule)) >= replay.peak
                if level <= budget:
                    fitted[config] += 1
                    assert replay.cost >= optimum
    assert feasible == 52 and min(fitted.values()) >= 35


def test_the_1000_node_layered_dag_fits_80_percent():
    """layered_dag(1000) at 80 % of store-all: evict-on-demand, Chen's sweep and sqrt(n) find no
    schedule there (formulations/checkpointing.md, section 4); the first descent does, with less
    than 10 % more compute than the lower bound of no recomputation at all (some is needed: the
    budget is below the store-all peak)."""
    problem = layered_dag(1000, seed=1000)
    budget = int(0.8 * store_all_peak(problem))
    schedule, level = gap_descent(problem, budget, PORTFOLIO[0])
    replay = evaluate_schedule(problem, schedule)
    assert replay.valid and replay.peak <= level <= budget
    assert sum(problem.cost) < replay.cost < 1.1 * sum(problem.cost)
