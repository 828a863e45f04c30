"""The fusion_checkpoint family: the fusion partition and the checkpoint plan of a training graph
chosen together under an activation budget (formulations/fusion.md, section 6).

Problem: a `FusedCheckpointProblem` (graph, accelerator, largest stack, cost weights, local
budgets); target: `CostUnderBudget` (the dynamic DRAM budget, bytes); payload: a
`FusedCheckpointPlan`, the partition's stacks with the cores of their ops and the checkpoint
decisions of that partition. The referee is the checkpoint family's (`schedule.check` on the
serial plan of the partition with the decisions): the claimed latency and energy must be
simulated, no memory may overflow and the dynamic DRAM peak must stay within the budget.

Method: cpsat, the search of `families/fusion_checkpoint/joint.py` (the exact joint search on graphs of at
most JOINT_MAX_OPS ops, then or else the alternation of the exact fusion and checkpoint models),
every inner checkpoint answer refereed on its own partition. Its status holds over the joint space
(every partition into stacks of at most max_stack ops with every checkpoint plan of it) after a
joint search, else over the answer's partition only: `space` names which.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem
from monet_opt.families.checkpoint.space import CheckpointSpace, Decisions
from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_and_checkpoint
from monet_opt.report.answer import checkpoint_lines
from monet_opt.schedule.simulate import Claim as PlanClaim
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import (
    Claim, CostUnderBudget, Family, Measurement, Method, MethodKind, Proposal, Verdict, registry,
)

Stacks = tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
REFEREE_SHARE = 0.05
"""The share of the time limit (at most REFEREE_RESERVE_S) that the search leaves for this family's
referee, which builds the answer's checkpoint space and simulates it once more after the search
(0.3-0.8 s for a GPT-2 small partition), so that the time limit holds for the whole solve."""
REFEREE_RESERVE_S = 2.0


@dataclass(frozen=True)
class FusedCheckpointPlan:
    """A fusion partition and its checkpoint plan: the stacks, (ops, the core of each op) each (None:
    unfused, every op alone on the default allocation's core), and the checkpoint decisions."""

    stacks: Stacks | None
    decisions: Decisions


def _checkpoint_problem(problem: FusedCheckpointProblem, stacks: Stacks | None) -> CheckpointProblem:
    """The checkpoint problem of the plan's partition (None: unfused), as the referee judges it."""
    space = CheckpointSpace(problem.graph, problem.hw, local_budget_bytes=problem.local_budget_bytes,
                            stacks=None if stacks is None else list(stacks))
    return CheckpointProblem(space, problem.weights)


def _search(problem: FusedCheckpointProblem, target: CostUnderBudget, options: SolverOptions, deadline: Deadline
            ) -> Proposal[FusedCheckpointPlan]:
    """The joint search and the alternation (`fuse_and_checkpoint`) for the target's budget, leaving
    the referee its share of the time (REFEREE_SHARE); it claims the latency and energy its
    checkpoint answer was refereed at."""
    search = Deadline(deadline.started, deadline.limit_s - min(REFEREE_SHARE * deadline.limit_s, REFEREE_RESERVE_S))
    found = fuse_and_checkpoint(replace(problem, budget_bytes=target.budget), options, search)
    stacks = found.details["stacks"]
    plan = FusedCheckpointPlan(None if stacks is None else tuple((tuple(ops), tuple(cores)) for ops, cores in stacks),
                               found.payload)
    measured = found.measurement
    claim = Claim(plan=PlanClaim(measured.latency_cycles, measured.energy_pj))
    return Proposal(plan, claim, replace(found.stats, solve_time_s=deadline.elapsed_s()),
                    {**found.details, "partition_space": found.space})


def _referee(problem: FusedCheckpointProblem, target: CostUnderBudget, plan: FusedCheckpointPlan,
             claim: Claim | None) -> Verdict:
    return CHECKPOINT.referee(_checkpoint_problem(problem, plan.stacks), target, plan.decisions, claim)


def _describe(problem: FusedCheckpointProblem, target: CostUnderBudget, plan: FusedCheckpointPlan | None,
              measured: Measurement | None) -> dict[str, Any]:
    return {"workload": problem.graph.name, "hardware": problem.hw.name, "objective_kind": problem.weights.name,
            "max_stack": problem.max_stack, "local_budget_bytes": dict(problem.local_budget_bytes)}


def _space(problem: FusedCheckpointProblem, proposal: Proposal[FusedCheckpointPlan]) -> str:
    """The joint space after a joint search that bounds the answer; else the answer's partition's
    checkpoint space, with the statement that no other partition is covered by its status."""
    space = proposal.report.get("partition_space")
    if space is None:
        return f"partitions into stacks of at most {problem.max_stack} ops with their checkpoint plans (nothing found)"
    if proposal.report.get("partitions_checkpointed") is None:
        space += ("; the partition is the one fusion and checkpointing alternated to (each exact given the other), "
                  "the status says nothing of other partitions")
    return space


def _unit(problem: FusedCheckpointProblem, target: CostUnderBudget) -> str:
    return {"latency": "cycles", "energy": "pJ"}.get(problem.weights.name, "weighted cycles + pJ")


FUSION_CHECKPOINT = Family(
    "fusion_checkpoint",
    registry(Method("cpsat", _search, MethodKind.EXACT,
                    "joint search over partitions (exact on small graphs), then fusion and checkpointing alternated, "
                    "each exact given the other")),
    _referee, _space, _describe,
    problem_name=lambda problem: f"{problem.graph.name}@{problem.hw.name}", objective_unit=_unit,
    answer_lines=checkpoint_lines)
