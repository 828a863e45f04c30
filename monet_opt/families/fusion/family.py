"""The fusion family: which ops run as fused stacks (formulations/fusion.md).

Problem: a `FusionSpace` (a graph on an accelerator, its candidate stacks for one objective);
target: the `FusionObjective` minimised; payload: the partition, as the chosen candidates. The
referee simulates the partition's serial plan (`space.plan_of`) with the validation scheduler: the
simulated latency must equal the claimed one exactly and the energy within
ENERGY_RELATIVE_TOLERANCE, no memory may overflow, and the measured objective is the simulated one.

Methods: cpsat (exact over the space, warm-started from the better of rule and none; when CP-SAT
finds nothing better in time, the answer is that warm start, flagged `from_warm_start`, with
CP-SAT's bound when it has one), ga
(NSGA-II over edge genes, `heuristics.py`), rule (the fixed rule), none (layer by layer).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from monet_opt.families.fusion.cpsat import solve_fusion_cpsat
from monet_opt.families.fusion.heuristics import (
    MONET_GA, layer_by_layer, rule_partition, run_fusion_ga, start_partition,
)
from monet_opt.families.fusion.space import (
    UNITS, Candidate, FusionObjective, FusionSpace, fusion_space, objective_value, plan_of,
)
from monet_opt.model.cost import CostTable
from monet_opt.model.workload.ir import Graph
from monet_opt.report.answer import fusion_lines
from monet_opt.schedule.plan import serial_sequence
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.schedule.simulate import check
from monet_opt.solving.common import Deadline, GAConfig, SolverOptions, heuristic_stats, warm_start_stats
from monet_opt.solving.contract import (
    Claim, Family, Measurement, Method, MethodKind, Proposal, Result, Verdict, registry, solve,
)

Partition = tuple[Candidate, ...]


def _claim(partition: Sequence[Candidate]) -> Claim:
    return Claim(plan=PlanClaim(latency_cycles=sum(c.latency_cycles for c in partition),
                                energy_pj=sum(c.energy_pj for c in partition)))


def _measured(space: FusionSpace, partition: Sequence[Candidate] | None, deadline: Deadline) -> Proposal[Partition]:
    """The answer of a method that priced its own partition: it claims those prices."""
    if partition is None:
        return Proposal(None, None, heuristic_stats(None, deadline))
    return Proposal(tuple(partition), _claim(partition), heuristic_stats(space.value(partition), deadline))


def _none(space: FusionSpace, objective: FusionObjective, options: SolverOptions, deadline: Deadline
          ) -> Proposal[Partition]:
    return _measured(space, layer_by_layer(space), deadline)


def _rule(space: FusionSpace, objective: FusionObjective, options: SolverOptions, deadline: Deadline
          ) -> Proposal[Partition]:
    return _measured(space, rule_partition(space), deadline)


def _ga(space: FusionSpace, objective: FusionObjective, options: SolverOptions, deadline: Deadline
        ) -> Proposal[Partition]:
    """NSGA-II over fuse/cut genes (`options.ga`, default MONET's settings seeded with the solve's seed)."""
    chosen = options.ga or replace(MONET_GA, seed=options.seed)
    return _measured(space, run_fusion_ga(space, chosen, deadline), deadline)


def _cpsat(space: FusionSpace, objective: FusionObjective, options: SolverOptions, deadline: Deadline
           ) -> Proposal[Partition]:
    hint = min((layer_by_layer(space), rule_partition(space), start_partition(space)), key=space.value)
    partition, stats = solve_fusion_cpsat(space, options, deadline, hint)
    from_warm_start = partition is None or space.value(hint) < space.value(partition)
    if from_warm_start:  # CP-SAT found nothing better in time: the warm start, with CP-SAT's bound if any
        partition = hint
        stats = warm_start_stats(stats, space.value(hint))
    report = {"warm_start_objective": space.value(hint), "from_warm_start": from_warm_start}
    return Proposal(tuple(partition), _claim(partition), stats, report)


def _referee(space: FusionSpace, objective: FusionObjective, partition: Partition, claim: Claim | None) -> Verdict:
    plan_claim = claim.plan if claim is not None and claim.plan is not None else PlanClaim()
    report = check(space.graph, space.table.hw, plan_of(space.graph, partition), plan_claim, space.table,
                   space.table.limits_bytes)
    result = report.result
    dram_bytes = sum(t.dram_read_bytes + t.dram_write_bytes for t in result.tasks)
    measured = Measurement(objective_value(objective, result.latency_cycles, result.energy_pj, dram_bytes), None,
                           tuple(f"{v.kind}: {v.message}" for v in result.violations), result.latency_cycles,
                           result.energy_pj, result)
    return Verdict(measured, report.disagreements)


def _describe(space: FusionSpace, objective: FusionObjective, partition: Partition | None,
              measured: Measurement | None) -> dict[str, Any]:
    base = layer_by_layer(space)
    base_latency = sum(c.latency_cycles for c in base)
    base_energy = sum(c.energy_pj for c in base)
    dram = None
    if measured is not None and measured.simulation is not None:
        dram = sum(t.dram_read_bytes + t.dram_write_bytes for t in measured.simulation.tasks)
    return {
        "workload": space.graph.name,
        "hardware": space.table.hw.name,
        "objective_kind": objective.value,
        "max_stack": space.max_stack,
        "candidates": None if space.counts is None else {
            "connected": space.counts.connected, "convex": space.counts.convex, "feasible": space.counts.feasible,
            "kept": space.counts.kept},
        "dram_bytes": dram,
        "layer_by_layer": {"latency_cycles": base_latency, "energy_pj": base_energy,
                           "dram_bytes": sum(c.dram_bytes for c in base)},
        "latency_change": None if measured is None else measured.latency_cycles / base_latency - 1,
        "energy_change": None if measured is None else measured.energy_pj / base_energy - 1,
        "fused_stacks": None if partition is None else sum(1 for c in partition if len(c.ops) > 1),
        "stacks": None if partition is None else [
            {"ops": list(c.ops), "cores": list(c.cores), "latency_cycles": c.latency_cycles, "energy_pj": c.energy_pj,
             "dram_bytes": c.dram_bytes, "tiles": c.tiles} for c in partition if len(c.ops) > 1],
    }


def _space(space: FusionSpace, proposal: Proposal[Partition]) -> str:
    text = (f"partitions of the {len(space.graph.ops)} ops into connected, convex stacks of at most {space.max_stack} "
            "ops with an acyclic stack graph, each stack on the cores of the placement rule, run serially; every "
            "value not passed inside a stack in DRAM")
    if space.alone:
        text += (f"; {len(space.alone)} ops kept alone, taken out of the fused stacks at the heuristic checkpoint "
                 f"plans' activation peak (peak splitting, toward the activation budget): "
                 f"{', '.join(sorted(space.alone))}")
    if space.complete or space.counts is None:
        return text
    return text + f"; only the {space.counts.kept} candidates enumerated before the deadline"


ENUMERATING_METHODS = frozenset({"cpsat"})
"""The methods that choose among enumerated candidate stacks (the others build their own stacks
from the single ops: `fusion_space(enumerate_stacks=False)`)."""


def space_for(method: str, graph: Graph, table: CostTable, max_stack: int, objective: FusionObjective,
              deadline: Deadline | None = None) -> FusionSpace:
    """The fusion space `method` searches: candidate stacks enumerated for the methods that choose
    among them (ENUMERATING_METHODS), single ops only for the rest."""
    return fusion_space(graph, table, max_stack, objective, deadline, enumerate_stacks=method in ENUMERATING_METHODS)


def fusion_family() -> Family:
    """The family with its methods."""
    methods = registry(
        Method("cpsat", _cpsat, MethodKind.EXACT, "exact CP-SAT set partitioning (warm-started)"),
        Method("ga", _ga, MethodKind.SEARCH, "NSGA-II over fuse/cut genes, one per edge"),
        Method("rule", _rule, MethodKind.RULE, "each conv/matmul with the elementwise and norm ops after it"),
        Method("none", _none, MethodKind.RULE, "layer by layer: every op alone"))
    return Family("fusion", methods, _referee, _space, _describe,
                  problem_name=lambda space: f"{space.graph.name}@{space.table.hw.name}",
                  objective_unit=lambda space, objective: UNITS[objective], answer_lines=fusion_lines)


FUSION = fusion_family()


def schedule_on_cores(space: FusionSpace, partition: Sequence[Candidate], method: str, options: SolverOptions,
                      deadline: Deadline | None = None) -> Result:
    """The chosen stacks scheduled on every core by the allocation family (stacks as tasks, each
    movable to the cores interchangeable with its main core): the multi-core makespan of the fused
    plan, validated by the simulator like every allocation."""
    from monet_opt.families.allocation.family import ALLOCATION, AllocationGoal, AllocationInstance
    from monet_opt.families.allocation.problem import from_fused, fused_stacks

    graph, hw = space.graph, space.table.hw
    by_name = {c.name: c for c in partition}
    order = serial_sequence(graph, {c.name: c.ops for c in partition})
    stacks = fused_stacks(hw, [(name, by_name[name].ops, by_name[name].cores) for name in order])
    instance = AllocationInstance(from_fused(graph, hw, space.table, stacks), graph, hw, space.table,
                                  {s.name: s for s in stacks})
    return solve(ALLOCATION, instance, AllocationGoal.LATENCY, method, options, deadline)


def solve_fusion(space: FusionSpace, method: str, options: SolverOptions, deadline: Deadline | None = None,
                 ga: GAConfig | None = None) -> Result[Partition]:
    """`solve()` of the fusion family for the space's objective."""
    return solve(FUSION, space, space.objective, method, replace(options, ga=ga or options.ga), deadline)
