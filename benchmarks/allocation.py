"""Allocation of whole training steps: exact CP-SAT against Stream's GA and HEFT.

Target: ResNet-18 (224 x 224, batch 1) on edge-tpu-quad and edge-hetero, GPT-2 mini on
edge-hetero and fusemax-dc, objective latency: CP-SAT latency, bound and gap at 60 s (2 workers);
the GA (64 x 250, 5 seeds) best and median latency and wall time; greedy (HEFT). Target: CP-SAT
within 1 % proven gap at 60 s on the ResNet-18 instances, and better than the GA's best at a tenth
of the GA's wall time (read from CP-SAT's incumbent curve). All latencies are simulated by the
validation scheduler. Prints a table and writes it as CSV next to the text output.

    python benchmarks/allocation.py [--time-limit 60] [--workers 2] [--seeds 5] [--generations 250]
                                    [--out benchmarks/results/allocation.txt]
"""

from __future__ import annotations

import argparse
import csv
import math
import io
import statistics
import sys
import time
from pathlib import Path

from common import emit, header
from monet_opt.families.allocation.family import AllocationInstance, solve_allocation
from monet_opt.families.allocation.ga import stream_ga_config
from monet_opt.families.allocation.problem import from_training
from monet_opt.io import write_text_atomic
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import load_forward_graph
from monet_opt.solving.common import Deadline, SolverOptions

INSTANCES = [("resnet18", "edge-tpu-quad"), ("resnet18", "edge-hetero"), ("gpt2-mini", "edge-hetero"),
             ("gpt2-mini", "fusemax-dc")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--generations", type=int, default=250)
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = []
    for workload, hardware in INSTANCES:
        graph = derive_training_graph(load_forward_graph(workload))
        hw = load_accelerator(hardware)
        table = CostTable(graph, hw)
        instance = AllocationInstance(from_training(graph, hw, table), graph, hw, table)
        print(f"{workload} on {hardware}: greedy, CP-SAT...", file=sys.stderr, flush=True)
        greedy = solve_allocation(instance, "greedy", "latency", SolverOptions())
        exact = solve_allocation(instance, "cpsat", "latency", SolverOptions(workers=args.workers, seed=0),
                                 deadline=Deadline.start(args.time_limit))
        ga_best, ga_seconds = [], []
        for seed in range(args.seeds):
            print(f"{workload} on {hardware}: GA seed {seed}...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            ga = solve_allocation(instance, "ga", "latency", SolverOptions(seed=seed),
                                  stream_ga_config(args.population, args.generations, seed=seed),
                                  deadline=Deadline.start(math.inf))
            ga_seconds.append(time.perf_counter() - started)
            ga_best.append(ga.payload.best.latency_cycles)
        tenth = statistics.mean(ga_seconds) / 10
        early = [i.objective for i in exact.stats.incumbents if i.time_s <= tenth]
        rows.append({
            "workload": workload, "hardware": hardware, "tasks": instance.problem.n,
            "greedy": greedy.payload.best.latency_cycles,
            "cpsat": exact.payload.best.latency_cycles, "cpsat_status": exact.stats.status.value,
            "cpsat_bound": round(exact.stats.bound) if exact.stats.bound is not None else None,
            "cpsat_gap_pct": None if exact.stats.gap is None else round(100 * exact.stats.gap, 3),
            "cpsat_time_to_best_s": None if exact.stats.time_to_best_s is None else round(exact.stats.time_to_best_s, 2),
            "ga_best": min(ga_best), "ga_median": statistics.median(ga_best),
            "ga_wall_s": round(statistics.mean(ga_seconds), 1),
            "cpsat_at_tenth_of_ga": min(early) if early else None,
            "tenth_of_ga_s": round(tenth, 1),
        })
    columns = list(rows[0])
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    table_text = "\n".join([" ".join(c.rjust(widths[c]) for c in columns)] +
                           [" ".join(str(r[c]).rjust(widths[c]) for c in columns) for r in rows])
    lines = [header(), "", f"objective latency (simulated cycles); CP-SAT {args.time_limit:g} s on {args.workers} "
                           f"workers; GA {args.population} x {args.generations}, {args.seeds} seeds", "", table_text,
             "", "cpsat_at_tenth_of_ga: CP-SAT's best incumbent (model makespan, an upper bound of the simulated "
                 "one) found within a tenth of the GA's mean wall time; '-'/None: none by then"]
    emit("\n".join(lines), args.out)
    if args.out:
        write_text_atomic(Path(args.out).with_suffix(".csv"), buffer.getvalue())


if __name__ == "__main__":
    main()
