"""How fast the validation scheduler evaluates one training step, and how fast the cost table fills.

Targets: one ResNet-18 (224, batch 1) training step on
edge-tpu-quad in at most 20 ms per evaluation including the cost-table lookups (the table is built
once, as a GA would), GPT-2 mini in at most 50 ms; the full (op, core) table of the GPT-2 small
training graph on a 4-compute-core accelerator in under 1 s. The ratio column divides by a plain
networkx topological sort of the same graph's op DAG, run in the same process.

    python benchmarks/simulate_step.py [--repeats N] [--out benchmarks/results/simulate_step.txt]
"""

from __future__ import annotations

import argparse

import networkx as nx

from common import emit, header, median_seconds
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import load_accelerator
from monet_opt.model.training import derive_training_graph
from monet_opt.model.workload import builtin_forward_graph
from monet_opt.schedule import default_plan, simulate

CASES = [("resnet18", "edge-tpu-quad", 0.020), ("gpt2-mini", "edge-tpu-quad", 0.050), ("gpt2-mini", "fusemax-dc", 0.050),
         ("resnet18", "edge-hetero", None), ("gpt2-mini", "dc-mesh4", None)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = [header(), "", "simulate one training step (default plan, cost table prebuilt)",
            f"{'workload':<11}{'hardware':<15}{'tasks':>6}{'simulate [ms]':>15}{'topo sort [ms]':>16}{'ratio':>8}"
            f"{'target [ms]':>13}"]
    for workload, hardware, target in CASES:
        graph = derive_training_graph(builtin_forward_graph(workload))
        hw = load_accelerator(hardware)
        table = CostTable(graph, hw)
        table.all_ops()
        plan = default_plan(graph, table)
        seconds = median_seconds(lambda: simulate(graph, hw, plan, table), args.repeats)
        dag = nx.DiGraph(graph.dag)
        topo = median_seconds(lambda: list(nx.topological_sort(dag)), args.repeats)
        rows.append(f"{workload:<11}{hardware:<15}{len(graph.ops):>6}{seconds * 1e3:>15.2f}{topo * 1e3:>16.3f}"
                    f"{seconds / topo:>8.0f}{'-' if target is None else f'<= {target * 1e3:.0f}':>13}")
    graph = derive_training_graph(builtin_forward_graph("gpt2-small"))
    hw = load_accelerator("edge-tpu-quad")
    seconds = median_seconds(lambda: CostTable(graph, hw).all_ops(), max(3, args.repeats // 10))
    pairs = len(graph.ops) * len(hw.cores)
    rows += ["", "cost table of every (op, core) pair, built from scratch",
             f"gpt2-small on edge-tpu-quad: {pairs} pairs in {seconds * 1e3:.1f} ms (target < 1000 ms)"]
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
