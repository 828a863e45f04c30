"""A serial checkpoint plan as a parallel plan: a warm start for the plan family's CP-SAT model.

The checkpoint family's heuristic plans (the rules and Chen's budget sweep, `best_heuristic`) run
one stack at a time on the default allocation; such a plan, simulated, is a point of the plan
space when it has no fused recomputation groups and its residencies are the plan space's (every
recomputed value a candidate, every value on chip eligible, each task priced so on its core). Its
simulated start times are then a feasible schedule of the plan model.
"""

from __future__ import annotations

from monet_opt.families.checkpoint.family import best_heuristic
from monet_opt.families.checkpoint.space import CheckpointSpace
from monet_opt.families.plan.problem import ParallelPlan, PlanProblem
from monet_opt.errors import InfeasibleError
from monet_opt.schedule.plan import Residency, default_plan
from monet_opt.solving.common import Deadline


def serial_warm_start(problem: PlanProblem, budget_bytes: int, deadline: Deadline) -> ParallelPlan | None:
    """The cheapest heuristic serial checkpoint plan within the budget, as a parallel plan (None: no
    heuristic plan fits, or the one that does is outside the plan space)."""
    stacks = None
    if problem.stacks is not None:  # an op alone runs where the default allocation puts it
        default = default_plan(problem.graph, problem.table).core_of
        stacks = [(ops, cores if len(ops) > 1 else (default[ops[0]],)) for ops, cores in problem.stacks]
    try:
        space = CheckpointSpace(problem.graph, problem.hw, local_budget_bytes=dict(problem.local_budget_bytes),
                                stacks=stacks)
        found = best_heuristic(space, problem.weights, budget_bytes, deadline)
    except InfeasibleError:  # a stack the checkpoint space cannot price: no serial plan to start from
        return None
    if found is None or found[0].groups:
        return None
    decisions, evaluation = found
    recomputed = frozenset(t for t, r in decisions.residency.items() if r is Residency.RECOMPUTE)
    on_chip = frozenset(t for t, r in decisions.residency.items() if r is Residency.ON_CHIP)
    if not recomputed <= set(problem.candidates) or not on_chip <= set(problem.on_chip_eligible):
        return None
    placement = {space.stack_name(j): cores for j, (_, cores) in enumerate(space.stacks)}
    core_of, start_cycles = {}, {}
    for task in evaluation.simulation.tasks:
        cores = placement.get(task.name, (task.core,))
        options = [o for o in problem.options.get(task.name, ()) if o.placement == cores]
        if not options:
            return None
        core_of[task.name], start_cycles[task.name] = options[0].core, task.start_cycle
    plan = ParallelPlan(recomputed, core_of, start_cycles, on_chip)
    try:
        for task in start_cycles:
            plan.option(problem, task)
    except StopIteration:  # a task not priced with its values on chip on that core
        return None
    return plan
