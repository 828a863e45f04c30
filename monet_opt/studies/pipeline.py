"""One instance, solved: the decisions it switches on, combined, each answer validated by the
simulator, against the layer-by-layer store-all baseline (`monet solve`, `monet_opt.solve`).

Combinations (`Instance.combine`):
- sequential: fusion (the partition), then checkpointing of that partition under the activation
  budget, then allocation of the fused stacks on every core; each stage takes the previous answer
  as fixed. When checkpointing follows, the fusion stage keeps the budget within the heuristics'
  reach (`families/fusion_checkpoint/joint.py`, `fuse_within_reach`): while the heuristic checkpoint plan of
  least activation peak (rules and Chen's sweep) of its partition is above the budget and a fused
  stack runs at that peak, that stack's ops are kept alone and fusion is solved again by the same
  method (peak splitting); its status then names the ops kept alone. Fusion prices every value in
  DRAM and does not see the checkpointing objective: that is what `joint` adds.
- joint: fusion and checkpointing chosen together (`families/fusion_checkpoint/joint.py`: exact joint search on
  graphs up to 40 ops, else the alternation of the two exact models), then allocation as above;
  checkpointing and allocation chosen together (the plan family, `families/plan/`: cores, start
  times and recomputation under the activation budget and every memory), over the fusion stage's
  partition when fusion is decided too (the fusion stage keeps the serial checkpoint plans within
  the budget's reach, as in sequential; then every fused stack at which the plan's list scheduler
  finds no room, whatever it recomputes, is split into single ops: `plan.list_schedule.within_reach`;
  when that does not reach the budget either, fused stacks are put back into the residencies of the
  serial checkpoint plan of the unfused ops as long as they fit, `plan.list_schedule.grow_fusion`,
  and only without such a plan is the plan over unfused ops; its space says which).
Allocation after checkpointing (sequential) is not built: a checkpoint plan's activation peak holds
for its serial order only, so such an instance is refused (the solve names why).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from monet_opt.errors import InputError
from monet_opt.families import default_registry
from monet_opt.families.allocation.family import AllocationGoal, AllocationInstance
from monet_opt.families.allocation.problem import from_training
from monet_opt.families.checkpoint.family import CheckpointProblem
from monet_opt.families.checkpoint.space import OBJECTIVES, PLAN_OBJECTIVES, CheckpointSpace, CostWeights
from monet_opt.families.fusion.family import schedule_on_cores, space_for
from monet_opt.families.fusion.space import Candidate, FusionObjective, FusionSpace
from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_within_reach
from monet_opt.families.plan.list_schedule import grow_fusion, within_reach
from monet_opt.families.plan.problem import PlanProblem
from monet_opt.families.plan.serial import exact_serial_warm_start, serial_warm_start
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import Accelerator, load_accelerator
from monet_opt.model.hardware.model import DRAM
from monet_opt.model.limits import PhysicalLimits, physical_limits
from monet_opt.model.training import Optimizer, UpdatePlacement, derive_training_graph, inference_graph, precision_named
from monet_opt.model.workload import Graph, load_forward_graph
from monet_opt.schedule import default_plan, simulate
from monet_opt.schedule.simulate import SimulationResult
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, Result, solve
from monet_opt.solving.registry import Registry
from monet_opt.studies.instance import Instance


@dataclass(frozen=True)
class Stage:
    """One decision's answer in the combination."""

    decision: str  # fusion, checkpointing, fusion+checkpointing or allocation
    result: Result


@dataclass(frozen=True)
class InstanceResult:
    """What a solve decided and what it costs: the stages in order, the answer (the last stage's
    validated plan), the baseline on the same hardware, and the time spent."""

    instance: Instance
    combination: str
    stages: tuple[Stage, ...]
    baseline: SimulationResult
    limits: PhysicalLimits  # the compute and DRAM bounds every plan of the instance's graph meets
    solve_time_s: float
    activation_budget_bytes: int | None = None  # the instance's, resolved (None: it has none)

    @property
    def answer(self) -> Result:
        return self.stages[-1].result

    @property
    def simulation(self) -> SimulationResult | None:
        measurement = self.answer.measurement
        return None if measurement is None else measurement.simulation

    def baseline_breaks(self) -> list[str]:
        """The constraints of the instance that the baseline plan breaks: the activation budget (its
        dynamic DRAM peak above it) and every capacity or local budget its simulation violates."""
        base = self.baseline
        out = [v.message for v in base.violations]
        budget = self.activation_budget_bytes
        peak = base.peak_memory_bytes[DRAM] - base.static_dram_bytes
        if budget is not None and peak > budget:
            out.insert(0, f"the activation budget: dynamic DRAM peak {peak:,} bytes > {budget:,}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the instance, the answer's shared keys, the change against the baseline, the
        answer and the baseline against the physical limits, and every stage's own answer (the shared
        schema of `Result.to_dict`)."""
        answer = self.answer.to_dict()
        base = self.baseline
        return {
            "instance": self.instance.name, "source": self.instance.source, "combination": self.combination,
            "validated": all(s.result.validated for s in self.stages),
            "latency_cycles": answer["latency_cycles"], "energy_pj": answer["energy_pj"],
            "baseline": {"latency_cycles": base.latency_cycles, "energy_pj": base.energy_pj,
                         "plan": "layer by layer, every value in DRAM, default allocation",
                         "dynamic_dram_peak_bytes": base.peak_memory_bytes[DRAM] - base.static_dram_bytes,
                         "breaks": self.baseline_breaks()},
            "physical_limits": {**self.limits.to_dict(answer["latency_cycles"]),
                                "baseline_over_bound": self.limits.ratios(base.latency_cycles)},
            "latency_change": None if answer["latency_cycles"] is None else
            answer["latency_cycles"] / base.latency_cycles - 1,
            "energy_change": None if answer["energy_pj"] is None else answer["energy_pj"] / base.energy_pj - 1,
            "solve_time_s": self.solve_time_s,
            "stages": [{"decision": s.decision, **s.result.to_dict()} for s in self.stages],
        }


def instance_graph(instance: Instance) -> Graph:
    forward = load_forward_graph(instance.workload, batch=instance.batch, seq_len=instance.seq_len,
                                 image_size=instance.image_size, num_classes=instance.classes)
    precision = precision_named(instance.precision, instance.mode == "training", instance.partial_sum)
    if instance.mode == "inference":
        return inference_graph(forward, precision)
    return derive_training_graph(forward, Optimizer(instance.optimizer), precision, UpdatePlacement(instance.updates))


def solve_instance(instance: Instance, workers: int = 2, progress: bool = True, started: float | None = None,
                   registry: Registry | None = None) -> InstanceResult:
    """Solve `instance` (module docstring) within its time limit, counted from `started` (default:
    now), with the families of `registry` (default: every family of monet_opt). Each decision gets
    its own time limit, or an equal share of what is left when it starts."""
    deadline = Deadline(time.perf_counter() if started is None else started, instance.time_limit_s)
    decisions = instance.decisions
    if {"allocation", "checkpointing"} <= set(decisions):
        if instance.combine != "joint":
            raise InputError(f"{instance.source}: optimise.allocation after optimise.checkpointing is not built (a "
                             "serial checkpoint plan's activation peak holds for its serial order only); "
                             "combine: joint plans both together")
    setting = _setting(instance, registry or default_registry(), workers)
    baseline = simulate(setting.graph, setting.hw, default_plan(setting.graph, setting.table), setting.table)
    stages: list[Stage] = []
    order = [d for d in STAGES if d in decisions]
    planned = instance.combine == "joint" and {"checkpointing", "allocation"} <= set(decisions)
    fused_joint = instance.combine == "joint" and not planned and {"fusion", "checkpointing"} <= set(decisions)
    if planned:
        order = [d for d in order if d == "fusion"] + ["checkpointing+allocation"]
        combination = "joint: checkpointing and allocation together" + (
            ", over the fusion stage's partition" if "fusion" in decisions else "")
    elif fused_joint:
        order = ["fusion+checkpointing"] + [d for d in order if d == "allocation"]
        combination = "joint: fusion and checkpointing together"
    else:
        combination = "sequential: " + " -> ".join(order)
    carried = Carried()
    for k, decision in enumerate(order):
        stage_deadline = _stage_deadline(instance, decision, deadline, len(order) - k)
        options = SolverOptions(workers=workers, seed=instance.seed, progress=False)
        if progress:
            print(f"monet solve: {decision} ...", file=sys.stderr, flush=True)
        result, carried = STAGES[decision](setting, carried, options, stage_deadline)
        stages.append(Stage(decision, result))
        if progress:
            print(f"monet solve: {decision}: {result.status.value}, objective {result.objective}, "
                  f"{result.stats.solve_time_s:.2f} s", file=sys.stderr, flush=True)
        if result.payload is None:
            break
    return InstanceResult(instance, combination, tuple(stages), baseline, physical_limits(setting.graph, setting.hw),
                          deadline.elapsed_s(),
                          setting.activation_budget_bytes)


@dataclass(frozen=True)
class Setting:
    """What every stage of one solve shares, built once: the instance, the registry, the graph, the
    accelerator, the local budgets (bytes), the cost table under them, and the activation budget
    (bytes of dynamic DRAM, resolved once against the unfused store-all peak; None without one)."""

    instance: Instance
    registry: Registry
    graph: Graph
    hw: Accelerator
    limits: dict[str, int]
    table: CostTable
    activation_budget_bytes: int | None


@dataclass(frozen=True)
class Carried:
    """What a stage hands to the next: the fusion partition and the space it was chosen in."""

    partition: Sequence[Candidate] | None = None
    fusion_space: FusionSpace | None = None


def _setting(instance: Instance, registry: Registry, workers: int) -> Setting:
    """The instance's graph, accelerator and budgets, each read and resolved once (InputError naming
    the file and key)."""
    try:
        hw = load_accelerator(instance.hardware)
    except InputError as exc:
        raise InputError(f"{instance.source}: hardware: {exc}") from None
    try:
        graph = instance_graph(instance)
    except InputError as exc:
        raise InputError(f"{instance.source}: workload (with its batch, seq_len, image_size, classes, precision): "
                         f"{exc}") from None
    unknown = [m for m in instance.local_budgets if m not in hw.memories]
    if unknown:
        raise InputError(f"{instance.source}: budgets.local.{unknown[0]}: unknown memory (known: "
                         f"{', '.join(hw.memories)})")
    limits = {m: budget.resolve(hw.memories[m].capacity_bytes) for m, budget in instance.local_budgets.items()}
    activation_budget = None
    if instance.activation_budget is not None:
        store_all = CheckpointSpace(graph, hw, local_budget_bytes=limits).store_all.dynamic_dram_peak_bytes
        activation_budget = instance.activation_budget.resolve(store_all)
    return Setting(instance, registry, graph, hw, limits, CostTable(graph, hw, limits), activation_budget)


def activation_budget_bytes(instance: Instance) -> int | None:
    """The activation budget a solve of `instance` keeps, in bytes (a percentage of the unfused serial
    store-all dynamic DRAM peak, resolved; None: the instance has none), without solving it
    (InputError as `solve_instance`)."""
    return _setting(instance, default_registry(), 1).activation_budget_bytes


def _stage_deadline(instance: Instance, decision: str, deadline: Deadline, stages_left: int) -> Deadline:
    """The decision's own time limit (within what is left), or an equal share of what is left."""
    names = decision.split("+")
    own = [instance.decisions[n].time_limit_s for n in names if instance.decisions[n].time_limit_s is not None]
    if own:
        return Deadline(time.perf_counter(), min(sum(own), deadline.remaining_s()))
    return deadline.share(1 / stages_left)


def _fused_checkpoint_problem(setting: Setting) -> FusedCheckpointProblem:
    fusion, checkpointing = setting.instance.decisions["fusion"], setting.instance.decisions["checkpointing"]
    assert setting.activation_budget_bytes is not None
    return FusedCheckpointProblem(setting.graph, setting.hw, fusion.max_stack, OBJECTIVES[checkpointing.objective],
                                  setting.activation_budget_bytes, setting.limits)


def _fusion(setting: Setting, carried: Carried, options: SolverOptions, deadline: Deadline
            ) -> tuple[Result, Carried]:
    """The fusion stage: its result, and the partition with the space it was solved over (peak
    splitting when checkpointing follows: module docstring)."""
    decision = setting.instance.decisions["fusion"]
    space = space_for(decision.method, setting.graph, setting.table, decision.max_stack,
                      FusionObjective(decision.objective), deadline)
    family = setting.registry.for_decision("fusion")
    if "checkpointing" not in setting.instance.decisions:
        result = solve(family, space, space.objective, decision.method, options, deadline)
    else:
        result, space = fuse_within_reach(family, space, decision.method, _fused_checkpoint_problem(setting),
                                          options, deadline)
    return result, Carried(result.payload, space)


def _checkpointing(setting: Setting, carried: Carried, options: SolverOptions, deadline: Deadline
                   ) -> tuple[Result, Carried]:
    decision = setting.instance.decisions["checkpointing"]
    stacks = None if carried.partition is None else [(c.ops, c.cores) for c in carried.partition]
    space = CheckpointSpace(setting.graph, setting.hw, local_budget_bytes=setting.limits, stacks=stacks)
    problem = CheckpointProblem(space, OBJECTIVES[decision.objective], free_order=decision.order == "free")
    assert setting.activation_budget_bytes is not None
    result = solve(setting.registry.for_decision("checkpointing"), problem,
                   CostUnderBudget(setting.activation_budget_bytes), decision.method, options, deadline)
    return result, carried


def _joint(setting: Setting, carried: Carried, options: SolverOptions, deadline: Deadline) -> tuple[Result, Carried]:
    """Fusion and checkpointing together: the fusion_checkpoint family's method that both decisions
    name (its methods: cpsat)."""
    fusion, checkpointing = setting.instance.decisions["fusion"], setting.instance.decisions["checkpointing"]
    family = setting.registry.family("fusion_checkpoint")
    if fusion.method != checkpointing.method or fusion.method not in family.methods:
        raise InputError(f"{setting.instance.source}: combine: joint needs one method of {', '.join(family.methods)} "
                         "for both fusion and checkpointing")
    problem = _fused_checkpoint_problem(setting)
    result = solve(family, problem, CostUnderBudget(problem.budget_bytes), fusion.method, options, deadline)
    return result, carried


def _allocation(setting: Setting, carried: Carried, options: SolverOptions, deadline: Deadline
                ) -> tuple[Result, Carried]:
    """The fused stacks (or the unfused ops) on every core; with `spread`, the plan family's (layers
    split across cores, fused stacks spread over them, start times, every memory within its
    capacity: all of DRAM the budget)."""
    method = setting.instance.decisions["allocation"].method
    if setting.instance.decisions["allocation"].spread:
        return _plan_stage(setting, carried, PLAN_OBJECTIVES["latency"], method, options, deadline), carried
    if carried.partition is not None:
        assert carried.fusion_space is not None
        return schedule_on_cores(carried.fusion_space, carried.partition, method, options, deadline), carried
    allocation = AllocationInstance(from_training(setting.graph, setting.hw, setting.table), setting.graph,
                                    setting.hw, setting.table)
    result = solve(setting.registry.for_decision("allocation"), allocation, AllocationGoal.LATENCY, method, options,
                   deadline)
    return result, carried


def _parallel_plan(setting: Setting, carried: Carried, options: SolverOptions, deadline: Deadline
                   ) -> tuple[Result, Carried]:
    """Checkpointing and allocation together: the plan family's method that both decisions name."""
    checkpointing, allocation = setting.instance.decisions["checkpointing"], setting.instance.decisions["allocation"]
    family = setting.registry.family("plan")
    if checkpointing.method != allocation.method or checkpointing.method not in family.methods:
        raise InputError(f"{setting.instance.source}: combine: joint needs one method of {', '.join(family.methods)} "
                         "for both checkpointing and allocation")
    weights = PLAN_OBJECTIVES[checkpointing.objective]
    return _plan_stage(setting, carried, weights, checkpointing.method, options, deadline), carried


def _plan_stage(setting: Setting, carried: Carried, weights: CostWeights, method: str, options: SolverOptions,
                deadline: Deadline) -> Result:
    """The plan family over the fusion stage's partition (or the unfused ops) within the activation
    budget (without one, all of DRAM: the plan of `spread` alone)."""
    stacks = None if carried.partition is None else tuple((c.ops, c.cores) for c in carried.partition)
    problem = PlanProblem(setting.graph, setting.hw, weights, setting.limits, stacks,
                          spread=setting.instance.decisions["allocation"].spread)
    budget = setting.activation_budget_bytes
    if budget is None:
        budget = problem.dynamic_dram_capacity_bytes()
    elif stacks is not None:
        problem = _partition_within_reach(problem, budget, method, options, deadline)
    return solve(setting.registry.family("plan"), problem, CostUnderBudget(budget), method, options, deadline)


def _partition_within_reach(problem: PlanProblem, budget_bytes: int, method: str, options: SolverOptions,
                            deadline: Deadline) -> PlanProblem:
    """The fusion stage's partition, changed where the plan's list scheduler cannot reach the budget
    with it: first the fused stacks at which it finds no room split (`within_reach`); when that does
    not reach, the serial checkpoint plan of the unfused ops (the checkpoint family's exact plan for
    cpsat, its heuristic plan otherwise) and fused stacks put back into its residencies as long as the
    list scheduler still fits (`grow_fusion`), that plan the problem's start; else every op alone."""
    reach = deadline.share(REACH_SHARE)
    split, found = within_reach(problem, budget_bytes, reach, split=True)
    if found is not None:
        return split
    fused = [task for task, ops in problem.stack_ops.items() if len(ops) > 1]
    alone = problem.splitting(*fused)
    reached = "in the time it had for splitting stacks" if reach.expired() else "even with stacks split"
    serial = (exact_serial_warm_start(alone, budget_bytes, options, deadline.share(SERIAL_REACH_SHARE))
              if method == "cpsat" else serial_warm_start(alone, budget_bytes, deadline.share(SERIAL_REACH_SHARE)))
    if serial is not None:
        grown, plan = grow_fusion(problem, serial, budget_bytes, deadline.share(GROW_SHARE))
        kept = len(fused) - len(grown.split)
        how = (f"the partition keeps {kept} of them, those that still fit with the residencies of the serial "
               "checkpoint plan of the unfused ops" if kept else
               "the plan is over unfused ops, started from their serial checkpoint plan")
        return replace(grown, starts=(plan,), note=(
            f"the list scheduler did not reach the budget from the fusion stage's partition ({len(fused)} fused "
            f"stacks) {reached}, so {how}"))
    return replace(problem, stacks=None, split=(), note=(
        f"the fusion stage's partition ({len(fused)} fused stacks) kept the budget out of the list scheduler's "
        f"reach {reached}, and no serial checkpoint plan of the unfused ops within the budget was found in the time "
        "it had, so the plan is over unfused ops"))


REACH_SHARE = 0.1
"""The share of the plan stage's time that splitting the fusion stage's stacks may take (`within_reach`)."""
SERIAL_REACH_SHARE = 0.2
"""The share of the plan stage's time left that the serial checkpoint plan of the unfused ops may take
when splitting stacks does not reach the budget."""
GROW_SHARE = 0.4
"""The share of the plan stage's time left that `grow_fusion` may take after that serial plan (the
plan family's CP-SAT rarely improves on the list schedule of a graph this large)."""

StageFunction = Callable[[Setting, Carried, SolverOptions, Deadline], tuple[Result, Carried]]
STAGES: dict[str, StageFunction] = {"fusion": _fusion, "checkpointing": _checkpointing, "allocation": _allocation,
                                    "fusion+checkpointing": _joint, "checkpointing+allocation": _parallel_plan}
"""The stages in the order they run (a sequential combination takes its decisions in this order;
the joint one replaces fusion and checkpointing by `fusion+checkpointing`, checkpointing and allocation by
`checkpointing+allocation`)."""
