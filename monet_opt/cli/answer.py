"""The answer of a solving command: printed as text or JSON, written under --out, and its exit code."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from monet_opt.io import write_json_atomic
from monet_opt.report import write_reports
from monet_opt.report.answer import format_answer
from monet_opt.solving.contract import ExitCode, Result

from monet_opt.cli.arguments import registry_of


def report_answer(result: Result, args: argparse.Namespace, answer_file: str, workload: str | None = None,
                  mode: str = "training", multi_core: Result | None = None) -> int:
    """Print the answer (text or JSON), write the files of --out, and return its exit code; an
    answer that is not validated is also named on stderr in one line. `multi_core`: the answer's
    plan scheduled on every core (`monet fuse --schedule`), reported under "multi_core" and
    written to DIR/multi_core/."""
    data = result.to_dict()
    if multi_core is not None:
        other = multi_core.to_dict()
        data["multi_core"] = {key: other[key] for key in ("method", "status", "validated", "latency_cycles",
                                                            "energy_pj", "bound", "gap", "cores_used", "solve_time_s")}
        simulation = None if multi_core.measurement is None else multi_core.measurement.simulation
        if args.out and simulation is not None:
            write_reports(simulation, Path(args.out) / "multi_core", workload=workload or result.problem, mode=mode)
    if args.out:
        from monet_opt.report.pareto import write_front

        simulation = None if result.measurement is None else result.measurement.simulation
        if simulation is not None:
            write_reports(simulation, args.out, workload=workload or result.problem, mode=mode,
                          dynamic_dram_budget_bytes=getattr(result.target, "budget", None))
        front = getattr(result.payload, "front", ())
        if len(front) > 1:
            write_front([(v.latency_cycles, v.energy_pj) for v in front], args.out,
                        f"{result.problem}: {result.method} front")
        write_json_atomic(Path(args.out) / answer_file, data)
    family_lines = registry_of(args).family(result.family).answer_lines
    print(json.dumps(data, indent=1) if args.json else format_answer(data, family_lines))
    if result.exit_code is ExitCode.NO_ANSWER:
        print(f"monet: {result.method} found no answer that satisfies the constraints "
              f"({result.stats.solve_time_s:.2f} s of the {args.time_limit:g} s limit; not proven infeasible)",
              file=sys.stderr)
        if data.get("smallest_budget_found") is not None:
            where = f" (order {data['smallest_budget_order']})" if data.get("smallest_budget_order") else ""
            print(f"monet: the smallest budget of any schedule found is {data['smallest_budget_found']:,.10g}{where}",
                  file=sys.stderr)
    elif result.exit_code is ExitCode.VIOLATES:
        print(f"monet: the {result.method} answer violates a constraint: {result.measurement.violations[0]}",
              file=sys.stderr)
    return int(result.exit_code)
