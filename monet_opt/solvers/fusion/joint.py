"""Fusion and checkpointing together under an activation budget (formulations/fusion.md, section 6).

Alternation to a fixed point: the fusion partition that is optimal given the current checkpoint
decisions (`fusion_space(..., residency)`, the exact set partitioning), then the checkpoint plan
that is optimal for that partition under the budget (`CheckpointSpace(stacks=...)`, the exact
checkpoint model), and again, until a partition repeats or the plan stops improving. The first
fusion step keeps every value in DRAM. The checkpoint plan of the unfused graph is a candidate too,
so the answer is never worse than checkpointing alone. The answer is the best checkpoint plan
found, a result of the checkpoint family on its fused partition: the validation scheduler
simulates it and its status is proven over that partition only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from monet_opt.cost.model import CostTable
from monet_opt.errors import InfeasibleError
from monet_opt.hardware.model import DRAM, Accelerator
from monet_opt.solvers.checkpoint.family import CHECKPOINT, CheckpointProblem
from monet_opt.solvers.checkpoint.heuristics import RULES, rule_decisions
from monet_opt.solvers.checkpoint.space import CheckpointSpace, CostWeights
from monet_opt.solvers.common import Deadline, SolverOptions
from monet_opt.solvers.contract import CostUnderBudget, Result, solve
from monet_opt.solvers.fusion.cpsat import solve_fusion_cpsat
from monet_opt.solvers.fusion.heuristics import layer_by_layer, rule_partition
from monet_opt.solvers.fusion.space import Candidate, FusionObjective, FusionSpace, fusion_space
from monet_opt.workload.ir import Graph

MAX_ROUNDS = 6
SHARE_PER_SOLVE = 0.5
"""Each solve of the alternation may use half of the time left when it starts."""


@dataclass(frozen=True)
class Round:
    """One fusion step and the checkpoint step on its partition."""

    fused_stacks: int
    stacks: int
    objective: float | None  # the checkpoint plan's (None: no plan within the budget)
    status: str


def fuse_and_checkpoint(graph: Graph, hw: Accelerator, max_stack: int, weights: CostWeights, budget_bytes: int,
                        options: SolverOptions, deadline: Deadline) -> Result:
    """The best (partition, checkpoint plan) of the alternation (module docstring), as the
    checkpoint family's result with the rounds in its details. InfeasibleError (from the unfused
    checkpoint model, with the smallest feasible budget) when no plan of any visited partition
    fits the budget."""
    quiet = replace(options, progress=False, export_model=None)
    table = CostTable(graph, hw)
    objective = FusionObjective.LATENCY if weights.energy_weight == 0 else FusionObjective.ENERGY
    target = CostUnderBudget(budget_bytes)
    best: Result | None = None
    best_stacks: list[list[str]] = []  # the fused stacks of the best plan's partition
    unfused_error: InfeasibleError | None = None
    try:
        best = solve(CHECKPOINT, CheckpointProblem(CheckpointSpace(graph, hw), weights), target, "cpsat", quiet,
                     deadline.share(SHARE_PER_SOLVE))
    except InfeasibleError as exc:
        unfused_error = exc
    rounds: list[Round] = []
    seen: set[frozenset[tuple[str, ...]]] = set()
    residency: dict = {}
    while len(rounds) < MAX_ROUNDS and not deadline.expired():
        space = fusion_space(graph, table, max_stack, objective, deadline.share(SHARE_PER_SOLVE), residency)
        partition, checkpoint_space = _fitting_partition(space, hw, weights, budget_bytes, quiet, deadline)
        key = frozenset(c.ops for c in partition)
        if key in seen:
            break
        seen.add(key)
        fused = sum(1 for c in partition if len(c.ops) > 1)
        if deadline.expired():
            rounds.append(Round(fused, len(partition), None, "not checkpointed (time limit)"))
            break
        try:
            result = solve(CHECKPOINT, CheckpointProblem(checkpoint_space, weights), target, "cpsat", quiet,
                           deadline.share(SHARE_PER_SOLVE))
        except InfeasibleError:
            rounds.append(Round(fused, len(partition), None, "infeasible"))
            break
        rounds.append(Round(fused, len(partition), result.objective, result.status.value))
        if not result.validated or (best is not None and best.validated and result.objective >= best.objective):
            break
        best = result
        best_stacks = [list(c.ops) for c in partition if len(c.ops) > 1]
        residency = dict(result.payload.residency)
    if best is None or not best.validated:
        if unfused_error is not None:
            raise unfused_error
        if best is None:
            raise InfeasibleError(f"{graph.name} on {hw.name}: no plan within {budget_bytes} bytes of activations")
    details: dict[str, Any] = {
        **best.details,
        "combination": ("alternating fusion (exact given the checkpoint decisions) and checkpointing (exact given "
                        f"the stacks) to a fixed point, max_stack {max_stack}"),
        "rounds": [r.__dict__ for r in rounds],
        "fused_stacks": best_stacks,
    }
    return replace(best, details=details, stats=replace(best.stats, solve_time_s=deadline.elapsed_s()))


def _fitting_partition(space: FusionSpace, hw: Accelerator, weights: CostWeights, budget_bytes: int,
                       options: SolverOptions, deadline: Deadline) -> tuple[list[Candidate], CheckpointSpace]:
    """The best partition of `space` whose rule checkpoint plans (store-all, recompute-all, sqrt)
    reach the budget, by peak splitting: while the lowest of their activation peaks is above the
    budget and a fused stack runs at that peak, forbid every candidate that shares an op with it
    and solve again. Fused stacks allocate all their outputs at once, which can lift the activation
    floor above what recomputation can reach; splitting the stack at the peak lowers it."""
    graph = space.graph
    excluded: set[str] = set()
    while True:
        allowed = replace(space, stacks=tuple(c for c in space.stacks if not excluded & set(c.ops)))
        hint = min((layer_by_layer(allowed), rule_partition(allowed)), key=allowed.value)
        partition, _ = solve_fusion_cpsat(allowed, options, deadline.share(SHARE_PER_SOLVE), hint)
        partition = partition or hint
        checkpoint_space = CheckpointSpace(graph, hw, stacks=[(c.ops, c.cores) for c in partition])
        if deadline.expired():
            return partition, checkpoint_space
        lowest = min((checkpoint_space.evaluate(rule_decisions(checkpoint_space, rule, weights)) for rule in RULES),
                     key=lambda e: e.dynamic_dram_peak_bytes)
        if lowest.dynamic_dram_peak_bytes <= budget_bytes or deadline.expired():
            return partition, checkpoint_space
        curve = lowest.simulation.memory_curves[DRAM]
        at = max(curve, key=lambda point: point[1])[0]
        running = [t for t in lowest.simulation.tasks if t.start_cycle <= at < t.end_cycle and len(t.ops) > 1]
        if not running:
            return partition, checkpoint_space
        excluded |= set(running[0].ops)
