"""Checkpointing ResNet-18 and GPT-2 mini training: optimizer updates at the end vs in the backward
pass, the reference order vs the order as a decision.

For each workload and update placement: the store-all peaks (dynamic DRAM, static DRAM, whole
DRAM), the smallest feasible dynamic budget in the reference order and over the candidate orders,
and at budgets of 50-90 % of that placement's store-all dynamic peak the optimal latency overhead
over store-all with the order fixed (`--order fixed`, proven optimal for the reference order) and
free (`--order free`: the exact model on each candidate order, the best kept), the whole DRAM the
plan needs (static + its dynamic peak), and which order won. Every plan is simulated by the
validation scheduler.

    python benchmarks/checkpoint_order.py [--workloads resnet18 gpt2-mini] [--time-limit 60]
                                          [--workers 2] [--out benchmarks/results/checkpoint_order.txt]
"""

from __future__ import annotations

import sys

from common import checkpoint_training_arguments, emit, header
from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import CHECKPOINT, CheckpointProblem, smallest_feasible_budget
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
from monet_opt.model.training import derive_training_graph
from monet_opt.model.training.derive import UpdatePlacement
from monet_opt.model.workload import load_forward_graph
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline
from monet_opt.solving.contract import CostUnderBudget, solve

MIB = 2**20


def main() -> None:
    args, options, hw = checkpoint_training_arguments(__doc__.splitlines()[0])
    objective = OBJECTIVES["latency"]
    lines = [header(), "", f"hardware {hw.name}; objective latency (cycles); time limit {args.time_limit:g} s per "
                           f"solve, {args.workers} workers; overheads relative to the store-all plan of the same "
                           "placement (store-all latency is the same for both); MiB = 2^20 bytes"]
    for workload in args.workloads:
        for updates in UpdatePlacement:
            graph = derive_training_graph(load_forward_graph(workload), updates=updates)
            space = CheckpointSpace(graph, hw)
            base = space.store_all
            static = base.simulation.static_dram_bytes
            fixed = CheckpointProblem(space, objective)
            free = CheckpointProblem(space, objective, free_order=True)
            print(f"{workload} updates {updates.value}: smallest feasible budgets...", file=sys.stderr, flush=True)
            lowest_fixed = smallest_feasible_budget(fixed, options, Deadline.start(args.time_limit))
            lowest_free = smallest_feasible_budget(free, options, Deadline.start(args.time_limit))
            lines += ["", f"== {graph.name}: {len(graph.ops)} ops, updates {updates.value}",
                      f"store-all: latency {base.latency_cycles:,} cycles; dynamic DRAM peak "
                      f"{base.dynamic_dram_peak_bytes / MIB:.2f} MiB + static {static / MIB:.2f} MiB = "
                      f"{(base.dynamic_dram_peak_bytes + static) / MIB:.2f} MiB of DRAM",
                      f"smallest feasible dynamic budget: reference order {_found(lowest_fixed)}; candidate orders "
                      f"{_found(lowest_free)}; no order below {lowest_free.lowest / MIB:.2f} MiB (largest op's "
                      "DRAM operands)",
                      f"{'budget':>7}{'dynamic':>10}{'DRAM':>10}{'fixed':>12}{'gap':>8}{'[s]':>6}"
                      f"{'free':>12}{'gap':>8}{'[s]':>6}{'free-fixed':>11}  order"]
            for percent in args.budgets:
                budget = Budget(percent, is_percent=True).resolve(base.dynamic_dram_peak_bytes)
                print(f"{workload} updates {updates.value} at {percent}%...", file=sys.stderr, flush=True)
                cells = []
                for problem in (fixed, free):
                    try:
                        result = solve(CHECKPOINT, problem, CostUnderBudget(budget), "cpsat", options,
                                       Deadline.start(args.time_limit))
                    except InfeasibleError:
                        cells.append(None)
                        continue
                    assert result.measurement is None or result.validated
                    cells.append(result)
                lines.append(f"{percent:>6}%{budget / MIB:>10.2f}{(budget + static) / MIB:>10.2f}"
                             + "".join(_cell(r, base.latency_cycles) for r in cells)
                             + f"{_versus(*cells):>11}  {_chosen(cells[1])}")
    lines += ["", "columns: dynamic = budget on the dynamic DRAM peak (MiB); DRAM = static + dynamic budget; fixed / "
                  "free = latency overhead over store-all and the status of the answer (optimal for fixed: over the "
                  "reference order; feasible for free: its gap is against the no-recomputation bound, valid for "
                  "every order); 'infeasible': proven below the smallest feasible budget (fixed: of the reference "
                  "order; free: of every order, by the largest op's DRAM operands), 'none': no plan in any candidate "
                  "order; free-fixed = free cost / fixed cost - 1; order = the candidate order of the free answer"]
    emit("\n".join(lines), args.out)


def _found(feasible) -> str:
    return "-" if feasible.achieved is None else f"{feasible.achieved / MIB:.2f} MiB"


def _cell(result, store_all_cycles: int) -> str:
    if result is None:
        return f"{'infeasible':>12}{'':>8}{'':>6}"
    if result.measurement is None:
        return f"{'none':>12}{'':>8}{result.stats.solve_time_s:>6.1f}"
    overhead = f"{100 * (result.measurement.latency_cycles / store_all_cycles - 1):+.2f}%"
    gap = "-" if result.stats.gap is None else f"{100 * result.stats.gap:.2f}%"
    return f"{overhead + ' ' + result.status.value[:3]:>12}{gap:>8}{result.stats.solve_time_s:>6.1f}"


def _versus(fixed, free) -> str:
    if fixed is None or free is None or fixed.measurement is None or free.measurement is None:
        return "-"
    return f"{100 * (free.measurement.latency_cycles / fixed.measurement.latency_cycles - 1):+.2f}%"


def _chosen(free) -> str:
    return "-" if free is None or free.measurement is None else free.details["order_chosen"]


if __name__ == "__main__":
    main()
