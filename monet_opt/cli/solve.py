"""`monet solve`: one instance file, a training instance (the pipeline of its decisions) or an
instance of one family (that family's method named by --method)."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from monet_opt.errors import InputError
from monet_opt.io import check_output_dir, write_json_atomic, write_text_atomic
from monet_opt.report import write_reports
from monet_opt.report.solve_report import solve_report
from monet_opt.solving.common import SolverOptions
from monet_opt.solving.contract import solve
from monet_opt.solving.registry import Registry
from monet_opt.studies.instance import FamilyInstance, Instance, load_any_instance
from monet_opt.studies.pipeline import solve_instance

from monet_opt.cli.answer import report_answer
from monet_opt.cli.arguments import (
    DEFAULT_INSTANCE, add_output_arguments, positive_float, positive_int, registry_of, work_deadline,
)


def populate_solve(solve_cmd: argparse.ArgumentParser, registry: Registry) -> None:
    kinds = registry.instance_kinds()
    methods = list(dict.fromkeys(m for family in kinds.values() for m in family.methods))
    listed = "; ".join(f"{name}: {', '.join(family.methods)}" for name, family in kinds.items())
    solve_cmd.add_argument("instance", nargs="?", metavar="INSTANCE.yaml",
                           help="the instance (default: instances/default.yaml of the source tree)")
    solve_cmd.add_argument("--method", choices=methods, metavar="METHOD",
                           help=f"required for an instance of one family (kind: FAMILY), its method ({listed}); a "
                                "training instance names its methods under optimise")
    solve_cmd.add_argument("--time-limit", type=positive_float, metavar="S",
                           help="wall-clock seconds for the whole command (default: the instance's time_limit)")
    solve_cmd.add_argument("--workers", type=positive_int, default=2, help="solver threads (default 2)")
    solve_cmd.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_output_arguments(solve_cmd, "result.json, report.md, and the plan's plan.json, schedule.png (cores and "
                                    "memories on one time axis), gantt.png, memory.png, "
                                    "trace.json")
    solve_cmd.set_defaults(handler=cmd_solve)


def cmd_solve(args: argparse.Namespace) -> int:
    registry = registry_of(args)
    path = Path(args.instance) if args.instance else DEFAULT_INSTANCE
    if args.instance is None and not path.is_file():
        raise InputError(f"no instance given and no default instance at {path} (give INSTANCE.yaml)")
    if args.out:
        check_output_dir(args.out)
    instance = load_any_instance(path, registry)
    if isinstance(instance, FamilyInstance):
        return _solve_family_instance(instance, args)
    if args.method is not None:
        raise InputError(f"{path}: --method {args.method}: a training instance names its methods under optimise "
                         "(--method is for an instance of one family)")
    return _solve_training_instance(instance, args, registry)


def _solve_family_instance(instance: FamilyInstance, args: argparse.Namespace) -> int:
    """`solve()` of the instance's family with --method: required, as such an instance (the suite's
    abstract instances) is there to compare the family's methods, none of which is the answer."""
    family = instance.family
    if args.method is None:
        raise InputError(f"{instance.source}: kind: {family.name!r} is an instance of the {family.name} family: give "
                         f"--method (one of {', '.join(family.methods)}), or run the suite with `monet bench`")
    method = family.method(args.method).name
    args.time_limit = instance.time_limit_s if args.time_limit is None else args.time_limit
    deadline = work_deadline(args, args.time_limit)
    options = SolverOptions(workers=args.workers, seed=instance.seed, progress=not args.quiet)
    result = solve(family, instance.problem, instance.target, method, options, deadline)
    return report_answer(result, args, "result.json")


def _solve_training_instance(instance: Instance, args: argparse.Namespace, registry: Registry) -> int:
    """The pipeline of the instance's decisions (`studies/pipeline.py`), reported with report.md."""
    work = work_deadline(args, instance.time_limit_s if args.time_limit is None else args.time_limit)
    instance = replace(instance, time_limit_s=work.limit_s)
    solved = solve_instance(instance, args.workers, not args.quiet, work.started, registry)
    data = solved.to_dict()

    def answer_lines(family: str) -> Callable[[Mapping[str, Any]], list[str]]:
        return registry.family(family).answer_lines
    if args.out:
        simulation = solved.simulation
        if simulation is not None:
            write_reports(simulation, args.out, workload=instance.workload, mode=instance.mode,
                          dynamic_dram_budget_bytes=solved.activation_budget_bytes)
            os.replace(Path(args.out) / "result.json", Path(args.out) / "plan.json")
            from monet_opt.report.plots import plot_schedule  # matplotlib, only when a plan is drawn

            title = f"{instance.name}: {simulation.latency_cycles:,} cycles on {simulation.accelerator}"
            plot_schedule(simulation, title, Path(args.out) / "schedule.png", solved.activation_budget_bytes)
        write_json_atomic(Path(args.out) / "result.json", data)
        write_text_atomic(Path(args.out) / "report.md", solve_report(data, answer_lines))
    print(json.dumps(data, indent=1) if args.json else solve_report(data, answer_lines))
    return max(int(stage.result.exit_code) for stage in solved.stages)
