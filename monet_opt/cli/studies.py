"""Commands over instances and spaces: `monet solve`, `monet bench`, `monet sweep`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from monet_opt.errors import InputError
from monet_opt.io import check_output_dir, provenance
from monet_opt.solving.common import Deadline
from monet_opt.solving.contract import ExitCode

from monet_opt.cli.arguments import registry_of
from monet_opt.cli.arguments import DEFAULT_INSTANCE, add_workload_arguments, path_text, positive_float, positive_int


def cmd_bench(args: argparse.Namespace) -> int:
    from monet_opt.studies.bench import bench_exit_code, methods_by_kind, print_progress, run_bench, suite_instances

    check_output_dir(args.out)
    registry = registry_of(args)
    instances = suite_instances(args.instances, args.suite, registry)
    methods = None
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        known = {m for ms in methods_by_kind(registry).values() for m in ms}
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise InputError(f"--methods: unknown method {unknown[0]!r} (known: {', '.join(sorted(known))})")
    deadline = Deadline(args.started, math.inf if args.time_limit is None else args.time_limit)
    rows, left = run_bench(instances, methods, args.out, deadline, args.row_time_limit, args.workers,
                           None if args.quiet else print_progress, provenance(args.command_line))
    print((Path(args.out) / "bench.md").read_text(encoding="utf-8"), end="")
    print(f"{len(rows)} rows in {args.out}/bench.csv, bench.md, quality.png, time_to_quality.png"
          + (f"; {left} rows left for a resumed run (the same command)" if left else ""))
    return int(bench_exit_code(rows, left))


def cmd_sweep(args: argparse.Namespace) -> int:
    from monet_opt.studies.design_sweep import WorkloadSpec, print_progress, sweep

    check_output_dir(args.out)
    modes = ("training", "inference") if args.mode == "both" else (args.mode,)
    workload = WorkloadSpec(args.workload, args.batch, args.seq_len, args.image_size, args.classes, args.optimizer,
                            args.precision, args.partial_sum, args.updates)
    deadline = Deadline(args.started, math.inf if args.time_limit is None else args.time_limit)
    table, left = sweep(args.space, workload, modes, args.samples, args.seed, args.grid, args.executor, args.address,
                        args.workers, args.points_per_task, args.out, None if args.quiet else print_progress,
                        args.plan, deadline, args.point_time_limit)
    feasible = sum(1 for f in table.column("feasible").to_pylist() if f)
    if left:
        print(f"{table.num_rows // len(modes)} points done ({feasible} feasible rows) in {args.out}/parts; {left} "
              "points left for a resumed run (the same command)")
        return int(ExitCode.NO_ANSWER)
    print(f"{table.num_rows // len(modes)} points x {len(modes)} modes: {table.num_rows} rows ({feasible} feasible) "
          f"in {args.out}/results.parquet, fronts.png")
    return 0


def add_bench_command(commands: argparse._SubParsersAction) -> None:
    """`monet bench`."""
    bench = commands.add_parser("bench", help="every instance of a suite x every method: a validated table with plots "
                                "(resumes where it stopped)")
    bench.add_argument("--suite", choices=["quick", "full"], default="quick", help="quick, or full (quick included)")
    bench.add_argument("--methods", metavar="M,...", help="training: joint, sequential, ga, heuristic; remat: cpsat, "
                       "milp, ga, greedy; allocation: cpsat, ga, greedy (default: every method of each kind)")
    bench.add_argument("--instances", default=str(DEFAULT_INSTANCE.parent), metavar="DIR",
                       help="the instances directory (default: instances/ of the source tree)")
    bench.add_argument("--out", type=path_text, default="bench-results", metavar="DIR",
                       help="rows.jsonl (kept across runs), bench.csv, bench.md, plots (default bench-results)")
    bench.add_argument("--time-limit", type=positive_float, metavar="S",
                       help="wall-clock seconds for the whole command; rows not started by then wait for a rerun")
    bench.add_argument("--row-time-limit", type=positive_float, metavar="S",
                       help="seconds per row (default: each instance's time_limit)")
    bench.add_argument("--workers", type=positive_int, default=2, help="solver threads (default 2)")
    bench.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bench.set_defaults(handler=cmd_bench)


def add_sweep_command(commands: argparse._SubParsersAction) -> None:
    """`monet sweep`."""
    sweep = commands.add_parser("sweep", help="price the points of a hardware design space on a workload "
                                "(resumes where it stopped)")
    sweep.add_argument("space", metavar="SPACE.yaml", help="a design space (README: Design spaces)")
    add_workload_arguments(sweep, positional=False)
    sweep.add_argument("--mode", choices=["training", "inference", "both"], default="both", help="default: both")
    sweep.add_argument("--plan", choices=["default", "rule", "optimised"], default="default",
                       help="default: layer by layer on the earliest core; rule: the fixed fusion rule, stack by "
                            "stack; optimised: fusion by CP-SAT for the least energy-delay product, per point")
    sweep.add_argument("--point-time-limit", type=positive_float, metavar="S",
                       help="seconds of search per point and mode with --plan optimised (default 5)")
    sweep.add_argument("--samples", type=positive_int, metavar="N", help="N points drawn uniformly (with --seed)")
    sweep.add_argument("--grid", action="store_true", help="every point that satisfies the constraints")
    sweep.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sweep.add_argument("--executor", choices=["local", "dask"], default="local",
                       help="local: a process pool; dask: Dask distributed (default local)")
    sweep.add_argument("--address", metavar="A", help="a Dask scheduler address (default: a LocalCluster)")
    sweep.add_argument("--workers", type=positive_int, default=2, help="processes (local) or LocalCluster workers")
    sweep.add_argument("--points-per-task", type=positive_int, metavar="N",
                       help="points per task (default 100; 1 with --plan optimised)")
    sweep.add_argument("--out", type=path_text, default="sweep-results", metavar="DIR",
                       help="sweep.json, parts/ (kept across runs), results.parquet (default sweep-results)")
    sweep.add_argument("--time-limit", type=positive_float, metavar="S",
                       help="wall-clock seconds for the whole command: no point starts after it (exit 4; the same "
                            "command resumes)")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sweep.set_defaults(handler=cmd_sweep)
