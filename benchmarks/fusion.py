"""Layer fusion: the exact partition against the GA (5 seeds, the same time limit), the fixed rule and
layer by layer, on ResNet-18 (224, batch 1) and GPT-2 mini, training (Adam, fp32) and inference, on
edge-tpu-quad and fusemax-dc, for max_stack 2..6. Latency objective (serial execution).

Per row: the candidates left by each step (connected / convex / fit / kept) and the enumeration
time; per method: latency and its change against layer by layer, energy, DRAM bytes, time, and for
CP-SAT its status and gap; for the GA the best, median and worst of the 5 seeds. Every answer is
validated by the simulator (a method's answer that is not would stop the script).

    python benchmarks/fusion.py [--time-limit 60] [--seeds 5] [--modes training,inference]
                                [--out benchmarks/results/fusion.txt]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from common import emit, header

from monet_opt.families.fusion.family import solve_fusion
from monet_opt.families.fusion.heuristics import MONET_GA
from monet_opt.families.fusion.space import FusionObjective, fusion_space
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph, inference_graph
from monet_opt.model.workload import builtin_forward_graph
from monet_opt.solving.common import Deadline, SolverOptions
from monet_opt.solving.genetic import GAConfig

CASES = (("resnet18", "edge-tpu-quad"), ("resnet18", "fusemax-dc"), ("gpt2-mini", "edge-tpu-quad"),
         ("gpt2-mini", "fusemax-dc"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--modes", default="training,inference")
    parser.add_argument("--max-stacks", default="2,3,4,5,6")
    parser.add_argument("--out")
    args = parser.parse_args()
    options = SolverOptions(workers=2, progress=False)
    rows = [header(), "", f"time limit {args.time_limit:g} s per method run; GA: MONET's settings (100 x 50), "
                          f"{args.seeds} seeds; latency in Mcycles (change vs layer by layer), energy in mJ, DRAM in MB"]
    for mode in args.modes.split(","):
        rows += ["", f"== {mode} ==",
                 f"{'workload@hardware':<26}{'K':>2} {'candidates conn/convex/fit/kept':>32} {'enum s':>7}  "
                 f"{'layer by layer':>15} {'rule':>17} {'cpsat':>17} {'status':>8} {'gap':>6} {'s':>5}  "
                 f"{'ga best / median / worst':>26} {'ga s':>5}  {'cpsat mJ':>9} {'cpsat DRAM MB':>13}"]
        for workload, hardware in CASES:
            forward = builtin_forward_graph(workload)
            graph = derive_training_graph(forward) if mode == "training" else inference_graph(forward)
            table = CostTable(graph, load_accelerator(hardware))
            for max_stack in (int(k) for k in args.max_stacks.split(",")):
                print(f"{mode} {workload}@{hardware} K={max_stack}...", file=sys.stderr, flush=True)
                started = time.perf_counter()
                space = fusion_space(graph, table, max_stack, FusionObjective.LATENCY)
                enumerated_s = time.perf_counter() - started
                base, rule, exact = (solve_fusion(space, m, options, Deadline.start(args.time_limit))
                                     for m in ("none", "rule", "cpsat"))
                gas = [solve_fusion(space, "ga", options, Deadline.start(args.time_limit),
                                    ga=GAConfig(MONET_GA.population, MONET_GA.generations,
                                                MONET_GA.crossover_probability, MONET_GA.mutation_probability, seed))
                       for seed in range(args.seeds)]
                for r in (base, rule, exact, *gas):
                    assert r.validated, (r.method, r.measurement)
                reference = base.objective

                def cell(value: float) -> str:
                    return f"{value / 1e6:7.3f} ({100 * (value / reference - 1):+5.1f}%)"

                c = space.counts
                ga_values = sorted(g.objective for g in gas)
                gap = exact.stats.gap
                rows.append(
                    f"{workload + '@' + hardware:<26}{max_stack:>2} "
                    f"{f'{c.connected:,}/{c.convex:,}/{c.feasible:,}/{c.kept:,}':>32} {enumerated_s:>7.2f}  "
                    f"{reference / 1e6:>15.3f} {cell(rule.objective):>17} {cell(exact.objective):>17} "
                    f"{exact.status.value:>8} {'-' if gap is None else f'{100 * gap:.2f}%':>6} "
                    f"{exact.stats.solve_time_s:>5.1f}  "
                    f"{f'{ga_values[0] / 1e6:.3f} / {statistics.median(ga_values) / 1e6:.3f} / {ga_values[-1] / 1e6:.3f}':>26} "
                    f"{statistics.median(g.stats.solve_time_s for g in gas):>5.1f}  "
                    f"{exact.measurement.energy_pj / 1e9:>9.3f} {exact.details['dram_bytes'] / 1e6:>13.1f}")
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
