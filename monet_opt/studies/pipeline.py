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
  graphs up to 40 ops, else the alternation of the two exact models), then allocation as above.
Allocation after checkpointing is not built: a checkpoint plan's activation peak holds for its
serial order only, so such an instance is refused (the solve names it).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monet_opt.model.cost import CostTable
from monet_opt.errors import InputError
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.hardware.model import DRAM
from monet_opt.studies.instance import Instance
from monet_opt.schedule import default_plan, simulate
from monet_opt.schedule.simulate import SimulationResult
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import Result
from monet_opt.model.training import Optimizer, UpdatePlacement, derive_training_graph, inference_graph, precision_named
from monet_opt.model.workload import Graph, load_forward_graph

if TYPE_CHECKING:
    from monet_opt.model.hardware import Accelerator
    from monet_opt.families.fusion.space import Candidate, FusionSpace


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
    solve_time_s: float

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
        budgets = [getattr(s.result.target, "budget", None) for s in self.stages
                   if s.result.family in ("checkpoint", "fusion_checkpoint")]
        peak = base.peak_memory_bytes[DRAM] - base.static_dram_bytes
        if budgets and budgets[0] is not None and peak > budgets[0]:
            out.insert(0, f"the activation budget: dynamic DRAM peak {peak:,} bytes > {budgets[0]:,}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the instance, the answer's shared keys, the change against the baseline, and
        every stage's own answer (the shared schema of `Result.to_dict`)."""
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


def solve_instance(instance: Instance, workers: int = 2, progress: bool = True,
                   started: float | None = None) -> InstanceResult:
    """Solve `instance` (module docstring) within its time limit, counted from `started` (default:
    now). Each decision gets its own time limit, or an equal share of what is left when it starts."""
    deadline = Deadline(time.perf_counter() if started is None else started, instance.time_limit_s)
    decisions = instance.decisions
    if "allocation" in decisions and "checkpointing" in decisions:
        raise InputError(f"{instance.source}: optimise.allocation with optimise.checkpointing is not built (a "
                         "checkpoint plan's activation peak holds for its serial order only)")
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
    limits = {m: Budget.parse(v, f"{instance.source}: budgets.local.{m}").resolve(hw.memories[m].capacity_bytes)
              for m, v in instance.local_budgets.items()}
    table = CostTable(graph, hw, limits)
    baseline = simulate(graph, hw, default_plan(graph, table), table)
    stages: list[Stage] = []
    joint = instance.combine == "joint" and {"fusion", "checkpointing"} <= set(decisions)
    order = [d for d in ("fusion", "checkpointing", "allocation") if d in decisions]
    if joint:
        order = ["fusion+checkpointing"] + [d for d in order if d == "allocation"]
    partition = None
    fusion_space_used = None
    for k, decision in enumerate(order):
        stage_deadline = _stage_deadline(instance, decision, deadline, len(order) - k)
        options = SolverOptions(time_limit_s=max(stage_deadline.remaining_s(), 0.0), workers=workers,
                                seed=instance.seed, progress=False)
        if progress:
            print(f"monet solve: {decision} ...", file=sys.stderr, flush=True)
        if decision == "fusion":
            result, fusion_space_used = _fusion(instance, graph, hw, table, limits, options, stage_deadline)
            partition = result.payload
        elif decision == "fusion+checkpointing":
            result = _joint(instance, graph, hw, limits, options, stage_deadline)
        elif decision == "checkpointing":
            result = _checkpointing(instance, graph, hw, limits, partition, options, stage_deadline)
        else:
            result = _allocation(instance, graph, hw, table, fusion_space_used, partition, options, stage_deadline)
        stages.append(Stage(decision, result))
        if progress:
            print(f"monet solve: {decision}: {result.status.value}, objective {result.objective}, "
                  f"{result.stats.solve_time_s:.2f} s", file=sys.stderr, flush=True)
        if result.payload is None:
            break
    combination = ("joint: fusion and checkpointing together" if joint else "sequential: " + " -> ".join(order))
    return InstanceResult(instance, combination, tuple(stages), baseline, deadline.elapsed_s())


def _stage_deadline(instance: Instance, decision: str, deadline: Deadline, stages_left: int) -> Deadline:
    """The decision's own time limit (within what is left), or an equal share of what is left."""
    names = decision.split("+")
    own = [instance.decisions[n].time_limit_s for n in names if instance.decisions[n].time_limit_s is not None]
    if own:
        return Deadline(time.perf_counter(), min(sum(own), deadline.remaining_s()))
    return deadline.share(1 / stages_left)


def _fusion(instance: Instance, graph: Graph, hw: Accelerator, table: CostTable, limits: dict[str, int],
            options: SolverOptions, deadline: Deadline) -> tuple[Result, FusionSpace]:
    """The fusion stage: its result and the space it was solved over (peak splitting: module docstring)."""
    from monet_opt.families.checkpoint.space import OBJECTIVES
    from monet_opt.solving.contract import solve
    from monet_opt.families.fusion.family import fusion_family
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_within_reach
    from monet_opt.families.fusion.space import FusionObjective, fusion_space
    from monet_opt.solving.genetic import GAConfig

    decision = instance.decisions["fusion"]
    space = fusion_space(graph, table, decision.max_stack, FusionObjective(decision.objective), deadline,
                         enumerate_stacks=decision.method == "cpsat")
    family = fusion_family(GAConfig(seed=instance.seed))
    checkpointing = instance.decisions.get("checkpointing")
    if checkpointing is None:
        return solve(family, space, space.objective, decision.method, options, deadline), space
    problem = FusedCheckpointProblem(graph, hw, decision.max_stack, OBJECTIVES[checkpointing.objective],
                                     _activation_budget(instance, graph, hw, limits), limits)
    return fuse_within_reach(family, space, decision.method, problem, options, deadline)


def _checkpointing(instance: Instance, graph: Graph, hw: Accelerator, limits: dict[str, int],
                   partition: Sequence[Candidate] | None,
                   options: SolverOptions, deadline: Deadline) -> Result:
    from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.solving.contract import CostUnderBudget, solve

    decision = instance.decisions["checkpointing"]
    stacks = None if partition is None else [(c.ops, c.cores) for c in partition]
    space = CheckpointSpace(graph, hw, local_budget_bytes=limits, stacks=stacks)
    budget = _activation_budget(instance, graph, hw, limits)
    problem = CheckpointProblem(space, OBJECTIVES[decision.objective], free_order=decision.order == "free")
    return solve(CHECKPOINT, problem, CostUnderBudget(budget), decision.method, options, deadline)


def _activation_budget(instance: Instance, graph: Graph, hw: Accelerator, limits: dict[str, int]) -> int:
    from monet_opt.families.checkpoint.space import CheckpointSpace

    budget = Budget.parse(instance.activation_budget, f"{instance.source}: budgets.activations")
    store_all = CheckpointSpace(graph, hw, local_budget_bytes=limits).store_all.dynamic_dram_peak_bytes
    return budget.resolve(store_all)


def _joint(instance: Instance, graph: Graph, hw: Accelerator, limits: dict[str, int], options: SolverOptions,
           deadline: Deadline) -> Result:
    from monet_opt.families.checkpoint.space import OBJECTIVES
    from monet_opt.solving.contract import CostUnderBudget, solve
    from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem
    from monet_opt.families.fusion_checkpoint.family import FUSION_CHECKPOINT

    fusion, checkpointing = instance.decisions["fusion"], instance.decisions["checkpointing"]
    if fusion.method != "cpsat" or checkpointing.method != "cpsat":
        raise InputError(f"{instance.source}: combine: joint needs method cpsat for fusion and checkpointing")
    budget = _activation_budget(instance, graph, hw, limits)
    problem = FusedCheckpointProblem(graph, hw, fusion.max_stack, OBJECTIVES[checkpointing.objective], budget, limits)
    return solve(FUSION_CHECKPOINT, problem, CostUnderBudget(budget), "cpsat", options, deadline)


def _allocation(instance: Instance, graph: Graph, hw: Accelerator, table: CostTable, space: FusionSpace | None,
                partition: Sequence[Candidate] | None, options: SolverOptions, deadline: Deadline) -> Result:
    from monet_opt.families.allocation.family import ALLOCATION, AllocationGoal, AllocationInstance
    from monet_opt.families.allocation.problem import from_training
    from monet_opt.solving.contract import solve
    from monet_opt.families.fusion.family import schedule_on_cores

    method = instance.decisions["allocation"].method
    if partition is not None:
        return schedule_on_cores(space, partition, method, options, deadline)
    allocation = AllocationInstance(from_training(graph, hw, table), graph, hw, table)
    return solve(ALLOCATION, allocation, AllocationGoal.LATENCY, method, options, deadline)
