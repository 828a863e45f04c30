"""Fusion and checkpointing chosen together: the exact joint search and the alternation against
checkpointing alone and against the sequential combination of `monet solve` (the fusion optimum
with every value in DRAM, peak-split, then the exact checkpoint plan of that partition; same time
limit) (formulations/fusion.md, section 6).

Cases: the tests' 11-op MLP and 24-op two-layer block on the toy machine with a small vector memory
(tests/hw_fixtures.py, tests/checkpoint_reference.py), at 100 % and 120 % of the unfused store-all
activation peak, stacks of up to K ops; ResNet-18 (224, batch 1) and ResNet-18 CIFAR (batch 4)
training on edge-tpu-quad at 80 % and 50 %. Each run has 60 s on 2 workers; latency in cycles.
The `partitions` column counts the partitions the joint search checkpointed exactly.

    python benchmarks/fusion_joint.py [--time-limit 60] [--out benchmarks/results/fusion_joint.txt]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import emit, header
from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import CHECKPOINT, solve_checkpoint
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
from monet_opt.families.fusion.family import FUSION
from monet_opt.families.fusion.space import FusionObjective, fusion_space
from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem, fuse_and_checkpoint, fuse_within_reach
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import builtin_forward_graph
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.contract import CostUnderBudget, solve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from checkpoint_reference import two_layer_block  # noqa: E402
from hw_fixtures import toy  # noqa: E402
from test_fusion import FUSED_CHECKPOINT_HARDWARE, small_mlp  # noqa: E402


def sequential(problem: FusedCheckpointProblem, options: SolverOptions, time_limit_s: float) -> float | None:
    """The sequential combination's latency (None: no plan within the budget), in `time_limit_s`
    for both stages together (fusion may use half)."""
    deadline = Deadline.start(time_limit_s)
    space = fusion_space(problem.graph, CostTable(problem.graph, problem.hw), problem.max_stack,
                         FusionObjective.LATENCY, deadline.share(0.5))
    fused, _ = fuse_within_reach(FUSION, space, "cpsat", problem, options, deadline.share(0.5))
    try:
        return solve(CHECKPOINT, problem.checkpoint(fused.payload), CostUnderBudget(problem.budget_bytes), "cpsat",
                     options, deadline).objective
    except InfeasibleError:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    goal = OBJECTIVES["latency"]
    small = toy(**FUSED_CHECKPOINT_HARDWARE["small vector memory"])
    edge = load_accelerator("edge-tpu-quad")
    cases = [("mlp", small_mlp(), small, (1.0, 1.2), (2, 3)), ("block", two_layer_block(), small, (1.0, 1.2), (2, 3, 4)),
             ("resnet18", derive_training_graph(builtin_forward_graph("resnet18")), edge, (0.8, 0.5), (4,)),
             ("resnet18-cifar", derive_training_graph(builtin_forward_graph("resnet18-cifar")), edge, (0.8,), (4,))]
    rows = [header(), "", f"time limit {args.time_limit:g} s per run, 2 workers; latency (cycles) of the validated "
            "plan; change of joint against checkpointing alone (unfused); sequential: none = no plan within the "
            "budget over its partition",
            f"{'case':<16}{'ops':>5}{'budget':>8}{'K':>3}{'alone':>14}{'sequential':>14}{'joint':>14}{'change':>9}"
            f"  {'status':<10}"
            f"{'gap':>7}{'partitions':>11}{'fused':>7}{'time [s]':>10}  search"]
    for name, graph, hw, fractions, stack_sizes in cases:
        unfused = CheckpointSpace(graph, hw)
        peak = unfused.store_all.dynamic_dram_peak_bytes
        for fraction in fractions:
            budget = int(fraction * peak)
            options = SolverOptions(workers=2, progress=False)
            try:
                alone = solve_checkpoint(unfused, goal, budget, "cpsat", options,
                                         deadline=Deadline.start(args.time_limit)).objective
            except InfeasibleError:
                alone = None
            for k in stack_sizes:
                print(f"{name} at {fraction:.0%}, K={k}...", file=sys.stderr, flush=True)
                problem = FusedCheckpointProblem(graph, hw, k, goal, budget)
                ordered = sequential(problem, options, args.time_limit)
                ordered_text = "none" if ordered is None else f"{ordered:,.0f}"
                started = time.perf_counter()
                try:
                    result = fuse_and_checkpoint(problem, options, Deadline(started, args.time_limit))
                except InfeasibleError:
                    rows.append(f"{name:<16}{len(graph.ops):>5}{fraction:>8.0%}{k:>3}{'-':>14}{ordered_text:>14}"
                                f"{'infeasible':>14}")
                    continue
                seconds = time.perf_counter() - started
                d = result.details
                change = "-" if alone is None or result.objective is None else f"{result.objective / alone - 1:+.1%}"
                gap = "-" if result.stats.gap is None else f"{result.stats.gap:.1%}"
                search = {"joint search, exact": "joint search", "joint search stopped unproven": "joint, then alternation",
                          "alternating": "alternation"}
                search = next(v for key, v in search.items() if d["combination"].startswith(key))
                rows.append(
                    f"{name:<16}{len(graph.ops):>5}{fraction:>8.0%}{k:>3}"
                    f"{'-' if alone is None else f'{alone:,.0f}':>14}{ordered_text:>14}"
                    f"{'-' if result.objective is None else f'{result.objective:,.0f}':>14}{change:>9}  "
                    f"{result.status.value:<10}{gap:>7}{d.get('partitions_checkpointed') or '-':>11}"
                    f"{len(d.get('fused_stacks') or []):>7}{seconds:>10.1f}  {search}")
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
