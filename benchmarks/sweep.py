"""Sweep throughput: ResNet-18 (224, batch 1, Adam, fp32) training steps priced with the default plan
on points of the edge design space (instances/spaces/edge.yaml), on 2 cores: the local process pool
(2 processes) on 10,000 points, then Dask distributed on a LocalCluster of 2 single-threaded workers
on the first 2,000 of the same points, in the same run; points per second and the ratio of the two.
Then the optimised plan (fusion by CP-SAT per point, 5 s per point) on the first 20 points, locally:
points per second, how many searches were proven optimal, and the training EDP it saves against
the default plan on the same points.

    python benchmarks/sweep.py [--samples 10000] [--dask-samples 2000] [--optimised-samples 20]
                               [--out benchmarks/results/sweep.txt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import emit, header
from monet_opt.studies.design_space import load_space, sample_points
from monet_opt.studies.design_sweep import SweepSpec, WorkloadSpec, print_progress, run_sweep

SPACE = Path(__file__).resolve().parent.parent / "instances" / "spaces" / "edge.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--dask-samples", type=int, default=2_000)
    parser.add_argument("--optimised-samples", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    space = load_space(SPACE)
    workload = WorkloadSpec("resnet18")
    graphs = workload.graphs(("training",))
    indices = tuple(sample_points(space, args.samples, seed=0))
    rows = [header(), "", f"ResNet-18 training step, default plan, edge space ({space.size:,} combinations), "
            "seed 0, 100 points per task, 2 workers",
            f"{'executor':<10}{'points':>8}{'wall [s]':>10}{'points/s':>10}{'vs local':>10}{'feasible':>10}"]
    rates = {}
    edp: dict[int, float] = {}
    for executor, count in (("local", len(indices)), ("dask", min(args.dask_samples, len(indices)))):
        spec = SweepSpec(str(SPACE), SPACE.read_text(encoding="utf-8"), repr(workload), ("training",),
                         indices[:count], 100)
        print(f"{executor}: {count} points ...", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            table, _ = run_sweep(space, spec, graphs, out, executor, workers=2,
                              progress=print_progress if count >= 1000 else None)
            seconds = time.perf_counter() - started
        rates[executor] = count / seconds
        feasible = sum(1 for f in table.column("feasible").to_pylist() if f)
        rows.append(f"{executor:<10}{count:>8,}{seconds:>10.1f}{rates[executor]:>10.1f}"
                    f"{rates[executor] / rates['local']:>10.2f}{feasible:>10,}")
        if executor == "local":
            edp = {r["index"]: r["latency_cycles"] * r["energy_pj"] for r in table.to_pylist() if r["feasible"]}
    count = min(args.optimised_samples, len(indices))
    spec = SweepSpec(str(SPACE), SPACE.read_text(encoding="utf-8"), repr(workload), ("training",), indices[:count],
                     1, "optimised", 5.0)
    print(f"optimised: {count} points ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        table, _ = run_sweep(space, spec, graphs, out, "local", workers=2)
        seconds = time.perf_counter() - started
    optimised = [r for r in table.to_pylist() if r["feasible"] and r["index"] in edp]
    proven = sum(1 for r in optimised if r["plan_status"] == "optimal")
    saved = [1 - r["latency_cycles"] * r["energy_pj"] / edp[r["index"]] for r in optimised]
    rows += ["", "optimised plan (fusion by CP-SAT for the least EDP, stacks <= 6 ops, 5 s per point, 1 point per "
             "task), local, 2 workers",
             f"{'points':>8}{'wall [s]':>10}{'points/s':>10}{'optimal':>9}{'EDP saved vs default: median':>30}"
             f"{'min':>7}{'max':>7}",
             f"{count:>8,}{seconds:>10.1f}{count / seconds:>10.2f}{proven:>9}"
             f"{sorted(saved)[len(saved) // 2]:>30.1%}{min(saved):>7.1%}{max(saved):>7.1%}"]
    emit("\n".join(rows), args.out)


if __name__ == "__main__":
    main()
