"""Checkpointing real training graphs on edge-tpu-quad: exact CP-SAT vs MILP, GA and heuristics.

Target: ResNet-18 (224 x 224, batch 1) and GPT-2 mini training graphs at budgets of 50, 60, 70, 80
and 90 % of the store-all activation memory (the dynamic DRAM peak: activations and transient
gradients): CP-SAT proven optimal within 60 s each on 2 workers (any that is not is reported with
its gap); the CP-SAT/MILP solve-time ratio; the GA's best cost against the exact optimum. Budgets
below the smallest feasible one are reported with that budget.

Two tables per workload:
1. the project's model (three choices per saved activation, fused recomputation, serial plan
   validated by the simulator): CP-SAT vs NSGA-II (MONET's 100 x 50, one run whose front is read
   at every budget), Chen's greedy and sqrt(n);
2. Checkmate's abstraction of the same graph (a node per op, cost = latency, size = output bytes,
   general recomputation schedules): the abstract CP-SAT model vs the Checkmate MILP (CBC), same
   time limit, same budgets (percent of the abstraction's own store-all peak).

    python benchmarks/checkpoint_training.py [--workloads resnet18 gpt2-mini] [--time-limit 60]
                                             [--workers 2] [--out benchmarks/results/checkpoint_training.txt]
"""

from __future__ import annotations

import math
import sys
import time

from common import checkpoint_training_arguments, emit, header
from monet_opt.errors import InfeasibleError
from monet_opt.families.checkpoint.family import CheckpointProblem, smallest_feasible_budget, solve_checkpoint
from monet_opt.families.checkpoint.heuristics import fits, greedy_plan, rule_decisions, run_checkpoint_ga
from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace, checkmate_abstraction
from monet_opt.families.remat.family import solve_remat
from monet_opt.families.remat.problem import store_all_peak
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import load_forward_graph
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline
from monet_opt.solving.genetic import GAConfig


def pct(value: float | None, base: float) -> str:
    return "-" if value is None else f"{100 * (value / base - 1):+.2f}%"


def main() -> None:
    args, options, hw = checkpoint_training_arguments(__doc__.splitlines()[0])
    objective = OBJECTIVES["latency"]
    lines = [header(), "", f"hardware {hw.name}; objective latency (cycles); CP-SAT and MILP time limit "
                           f"{args.time_limit:g} s, {args.workers} workers; overheads relative to store-all"]
    for workload in args.workloads:
        space = CheckpointSpace(derive_training_graph(load_forward_graph(workload)), hw)
        base = space.store_all
        print(f"{workload}: smallest feasible budget...", file=sys.stderr, flush=True)
        lowest = smallest_feasible_budget(CheckpointProblem(space, objective), options,
                                          Deadline.start(args.time_limit)).achieved
        print(f"{workload}: GA 100 x 50...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        _, _, front = run_checkpoint_ga(space, objective, base.dynamic_dram_peak_bytes, GAConfig(seed=0),
                                        Deadline.start(math.inf))
        ga_seconds = time.perf_counter() - started
        lines += ["", f"== {space.graph.name}: {len(space.graph.ops)} ops, {len(space.decisions)} saved activations, "
                      f"{len(space.groups)} candidate fused groups",
                  f"store-all: latency {base.latency_cycles:,} cycles, energy {base.energy_pj / 1e6:,.1f} uJ, "
                  f"activation peak {base.dynamic_dram_peak_bytes:,} bytes; smallest feasible budget {lowest:,} bytes "
                  f"({100 * lowest / base.dynamic_dram_peak_bytes:.1f}%); GA run {ga_seconds:.1f} s",
                  "",
                  "three-choice model (validated by the simulator):",
                  f"{'budget':>7}{'bytes':>12}{'status':>11}{'gap':>8}{'time [s]':>10}{'cpsat':>10}{'ga':>10}"
                  f"{'ga-exact':>10}{'greedy':>10}{'sqrt(n)':>10}{'recomp':>8}{'groups':>8}"]
        for percent in args.budgets:
            budget = Budget(percent, is_percent=True).resolve(base.dynamic_dram_peak_bytes)
            print(f"{workload} at {percent}%...", file=sys.stderr, flush=True)
            try:
                exact = solve_checkpoint(space, objective, budget, "cpsat", options,
                                         deadline=Deadline.start(args.time_limit))
            except InfeasibleError:
                lines.append(f"{percent:>6}%{budget:>12,}{'infeasible':>11}   (below the smallest feasible budget)")
                continue
            s = exact.stats
            cost = exact.measurement.latency_cycles if exact.measurement else None
            ga = min([c for c, peak, _ in front if peak <= budget], default=None)
            greedy = greedy_plan(space, objective, budget)
            greedy_eval = None if greedy is None else greedy[1]
            sqrt_eval = space.evaluate(rule_decisions(space, "sqrt", objective))
            sqrt_cost = sqrt_eval.latency_cycles if fits(space, sqrt_eval, budget) else None
            decisions = exact.payload
            recomputed = sum(1 for r in decisions.residency.values() if r.value == "recompute") if decisions else 0
            lines.append(
                f"{percent:>6}%{budget:>12,}{s.status.value:>11}{'-' if s.gap is None else f'{100 * s.gap:.2f}%':>8}"
                f"{s.solve_time_s:>10.2f}{pct(cost, base.latency_cycles):>10}{pct(ga, base.latency_cycles):>10}"
                f"{'-' if ga is None or cost is None else f'{100 * (ga / cost - 1):+.2f}%':>10}"
                f"{pct(greedy_eval.latency_cycles if greedy_eval else None, base.latency_cycles):>10}"
                f"{pct(sqrt_cost, base.latency_cycles):>10}{recomputed:>8}"
                f"{len(decisions.groups) if decisions else 0:>8}")
        problem = checkmate_abstraction(space)
        peak = store_all_peak(problem)
        lines += ["", f"Checkmate abstraction ({problem.n} nodes, store-all peak {peak:,} bytes):",
                  f"{'budget':>7}{'cpsat':>11}{'cpsat [s]':>11}{'cpsat gap':>11}{'milp':>11}{'milp [s]':>10}"
                  f"{'milp gap':>10}{'ratio':>8}{'milp-cpsat':>12}"]
        for percent in args.budgets:
            budget = int(peak * percent / 100)
            cells = []
            for method in ("cpsat", "milp"):
                print(f"{workload} abstraction at {percent}%: {method}...", file=sys.stderr, flush=True)
                try:
                    r = solve_remat(problem, budget, method, options, deadline=Deadline.start(args.time_limit))
                    gap = "-" if r.stats.gap is None else f"{100 * r.stats.gap:.2f}%"
                    cells.append((r.stats.status.value, r.stats.solve_time_s, gap, r.objective))
                except InfeasibleError:
                    cells.append(("infeasible", 0.0, "-", None))
            (cs, ct, cg, cc), (ms, mt, mg, mc) = cells
            ratio = f"{ct / mt:.2f}" if cs == "optimal" and ms == "optimal" and mt > 0 else "-"
            versus = "-" if cc is None or mc is None else f"{100 * (mc / cc - 1):+.3f}%"
            lines.append(f"{percent:>6}%{cs:>11}{ct:>11.1f}{cg:>11}{ms:>11}{mt:>10.1f}{mg:>10}{ratio:>8}{versus:>12}")
    lines += ["", "columns: cpsat/ga/greedy/sqrt(n) = latency overhead vs store-all; ga-exact = GA cost / CP-SAT "
                  "cost - 1; recomp = recomputed saved activations; groups = fused recompute stacks; ratio = CP-SAT "
                  "time / MILP time when both prove optimality; milp-cpsat = MILP cost / CP-SAT cost - 1 (0: same optimum)"]
    emit("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
