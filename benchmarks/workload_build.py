"""How long building a training graph takes (forward graph + derivation + memory report).

Targets: GPT-2 small under 1 s, ResNet-18 (224, batch 1) under 0.2 s on a
2-core machine. The ratio column divides by the time of a plain networkx topological sort of the
same training graph's op DAG, measured in the same process, so that the figure means something on
any machine.

    python benchmarks/workload_build.py [--repeats N] [--out benchmarks/results/workload_build.txt]
"""

from __future__ import annotations

import argparse

import networkx as nx

from common import emit, header, median_seconds
from monet_opt.model.training import derive_training_graph, memory_report
from monet_opt.model.workload import builtin_forward_graph

TARGETS_S = {"resnet18": 0.2, "gpt2-small": 1.0, "gpt2-mini": None, "resnet18-cifar": None}


def build(name: str):
    training = derive_training_graph(builtin_forward_graph(name))
    memory_report(training)
    return training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    rows = [header(), "", f"{'model':<16}{'ops':>6}{'build [ms]':>12}{'topo sort [ms]':>16}{'ratio':>8}{'target [ms]':>13}"]
    for name, target in TARGETS_S.items():
        training = build(name)
        seconds = median_seconds(lambda: build(name), args.repeats)
        dag = nx.DiGraph(training.dag)
        topo = median_seconds(lambda: list(nx.topological_sort(dag)), args.repeats)
        rows.append(
            f"{name:<16}{len(training.ops):>6}{seconds * 1e3:>12.2f}{topo * 1e3:>16.3f}{seconds / topo:>8.1f}"
            f"{'-' if target is None else f'< {target * 1e3:.0f}':>13}"
        )
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
