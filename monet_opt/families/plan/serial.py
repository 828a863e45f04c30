"""A serial checkpoint plan as a parallel plan: warm starts for the plan family's CP-SAT model.

The checkpoint family's plans (its heuristics, `best_heuristic`, and its exact model) run one stack
at a time on the default allocation; such a plan, simulated, is a point of the plan space when its
residencies are the plan space's (every recomputed value a candidate, every value on chip
eligible, each task priced so on its core) and its fused recomputation groups are candidate groups
of the plan space (`PlanProblem.groups`). A plan with other groups is taken with their members
recomputed alone (simulated again, and kept only when it still fits the budget). Its simulated start
times are then a feasible schedule of the plan model: a plan started from the serial optimum is
never slower than it (than its ungrouped form, where it had other groups).
"""

from __future__ import annotations

from dataclasses import replace

from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem, best_heuristic
from monet_opt.families.checkpoint.heuristics import fits
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace, CostWeights, Decisions
from monet_opt.families.plan.problem import ParallelPlan, PlanProblem
from monet_opt.schedule.plan import RECOMPUTE_SUFFIX, Residency, default_plan, recompute_group_name
from monet_opt.schedule.simulate import SimulationResult
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, solve


def _checkpoint_space(problem: PlanProblem) -> CheckpointSpace | None:
    """The checkpoint space of the problem's partition on the default allocation (an op alone where
    the default allocation puts it); None when the checkpoint space cannot price a stack."""
    stacks = None
    if problem.stacks is not None:
        default = default_plan(problem.graph, problem.table).core_of
        stacks = [(ops, cores if len(ops) > 1 else (default[ops[0]],)) for ops, cores in problem.stacks]
    try:
        return CheckpointSpace(problem.graph, problem.hw, local_budget_bytes=dict(problem.local_budget_bytes),
                               stacks=stacks)
    except InfeasibleError:
        return None


def _checkpoint_weights(problem: PlanProblem) -> CostWeights:
    """The checkpoint family's objective for the problem's: the same, or latency for the EDP (which
    it does not have; a fast plan is the EDP search's start)."""
    return OBJECTIVES["latency"] if problem.weights.product else problem.weights


def serial_warm_start(problem: PlanProblem, budget_bytes: int, deadline: Deadline) -> ParallelPlan | None:
    """The cheapest heuristic serial checkpoint plan within the budget, as a parallel plan (None: no
    heuristic plan fits, or the one that does is outside the plan space)."""
    space = _checkpoint_space(problem)
    found = None if space is None else best_heuristic(space, _checkpoint_weights(problem), budget_bytes, deadline)
    return None if found is None else as_parallel(problem, space, found[0], found[1].simulation, budget_bytes)


def exact_serial_warm_start(problem: PlanProblem, budget_bytes: int, options: SolverOptions, deadline: Deadline
                            ) -> ParallelPlan | None:
    """The checkpoint family's CP-SAT plan of the same partition within the budget (its best by the
    deadline), as a parallel plan; None when it finds none or its plan is outside the plan space."""
    space = _checkpoint_space(problem)
    if space is None:
        return None
    try:
        result = solve(CHECKPOINT, CheckpointProblem(space, _checkpoint_weights(problem), diagnose=False),
                       CostUnderBudget(budget_bytes), "cpsat", replace(options, progress=False), deadline,
                       diagnose=False)
    except InfeasibleError:
        return None
    if not result.validated:
        return None
    return as_parallel(problem, space, result.payload, result.measurement.simulation, budget_bytes)


def as_parallel(problem: PlanProblem, space: CheckpointSpace, decisions: Decisions, simulation: SimulationResult,
                budget_bytes: int) -> ParallelPlan | None:
    """A simulated serial checkpoint plan of `space` within `budget_bytes` as a plan of `problem`;
    fused recomputation groups that are not candidate groups of `problem` ungrouped (None: outside
    its space: an order other than the reference one, a residency the plan space does not have, a
    task not priced so; or, ungrouped, above the budget)."""
    if decisions.op_order is not None:
        return None
    if not set(decisions.groups) <= set(problem.groups):  # each member recomputed alone, its copy in DRAM
        decisions = replace(decisions, groups=())
        evaluation = space.evaluate(decisions)
        if not fits(space, evaluation, budget_bytes):
            return None
        simulation = evaluation.simulation
    task_of_group = {recompute_group_name(g): g[-1] + RECOMPUTE_SUFFIX for g in decisions.groups}
    recomputed = frozenset(t for t, r in decisions.residency.items() if r is Residency.RECOMPUTE)
    on_chip = frozenset(t for t, r in decisions.residency.items() if r is Residency.ON_CHIP)
    if not recomputed <= set(problem.candidates) or not on_chip <= set(problem.on_chip_eligible):
        return None
    placement = {space.stack_name(j): cores for j, (_, cores) in enumerate(space.stacks)}
    core_of, start_cycles = {}, {}
    for task in simulation.tasks:
        cores = placement.get(task.name, (task.core,))
        name = task_of_group.get(task.name, task.name)
        options = [o for o in problem.options.get(name, ()) if o.placement == cores and not o.spread]
        if not options:
            return None
        core_of[name], start_cycles[name] = options[0].core, task.start_cycle
    plan = ParallelPlan(recomputed, core_of, start_cycles, on_chip, frozenset(decisions.groups))
    try:
        for task in start_cycles:
            plan.option(problem, task)
    except StopIteration:  # a task not priced with its values on chip on that core
        return None
    return plan
