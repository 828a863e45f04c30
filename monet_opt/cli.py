"""The `monet` command line. Exit codes (`contract.ExitCode`): 0 a validated answer, 2 bad input, 3 proven
infeasible, 4 no answer within the time limit, 5 an answer that violates a constraint; errors are one
line on stderr."""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING

from monet_opt.model.cost import CostTable
from monet_opt.errors import InputError, MonetError
from monet_opt.model.hardware import Accelerator, builtin_hardware, load_accelerator
from monet_opt.model.hardware.describe import accelerator_to_dict, format_accelerator
from monet_opt.io import check_output_dir, check_output_file, provenance, write_json_atomic
from monet_opt.report import format_result, result_to_dict, write_reports
from monet_opt.report.answer import format_answer, number_text
from monet_opt.schedule import default_plan, simulate
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import Deadline, SolverOptions, parse_cpsat_params
from monet_opt.solving.contract import CostUnderBudget, ExitCode, Family, Result, SolverBug, solve
from monet_opt.model.training import (
    ACCUMULATORS, PRECISIONS, Optimizer, UpdatePlacement, derive_training_graph, inference_graph, memory_report,
    precision_named,
)
from monet_opt.model.training.summary import format_summary, workload_summary
from monet_opt.model.workload import BUILTIN_MODELS, Graph, load_forward_graph
from monet_opt.model.workload.serialize import graph_to_dict

if TYPE_CHECKING:
    from monet_opt.families.checkpoint.space import CheckpointSpace

# The solver families (OR-Tools, DEAP, PuLP) and the plots (matplotlib) are imported by the
# commands that use them, so that `monet --help` and the other commands start quickly.


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def _path(text: str) -> str:
    """A file or directory argument: not empty (an empty --out would silently write nothing)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path")
    return text


def add_workload_arguments(p: argparse.ArgumentParser, positional: bool = True, required: bool = True) -> None:
    """The workload options shared by every command that builds a training graph."""
    what = f"built-in ({', '.join(BUILTIN_MODELS)}) or ONNX file"
    if positional:
        p.add_argument("workload", metavar="MODEL|FILE.onnx", help=what)
    else:
        p.add_argument("--workload", required=required, metavar="MODEL|FILE.onnx", help=what)
    p.add_argument("--batch", type=_positive_int, help="batch size (default: the model's preset)")
    p.add_argument("--seq-len", type=_positive_int, help="sequence length of a language model")
    p.add_argument("--image-size", type=_positive_int, help="input height = width of a CNN")
    p.add_argument("--classes", type=_positive_int, help="number of classes of a CNN")
    p.add_argument("--optimizer", choices=[o.value for o in Optimizer], default="adam", help="default: adam")
    p.add_argument("--updates", choices=[u.value for u in UpdatePlacement], default="end",
                   help="each weight's optimizer update after the backward pass (end, default; weight gradients "
                        "static) or right after its gradient is complete (backward; each gradient freed by it)")
    p.add_argument("--precision", choices=list(PRECISIONS), default="fp32", metavar="PRECISION",
                   help=f"element types per role: {', '.join(PRECISIONS)} (training: "
                        f"{', '.join(n for n, x in PRECISIONS.items() if x.training)}; default fp32)")
    p.add_argument("--partial-sum", choices=[a.value for a in ACCUMULATORS], metavar="TYPE",
                   help="element type of MAC partial sums (default: int32 for integer precisions, else fp32)")


def workload_graphs(args: argparse.Namespace, mode: str = "training") -> tuple[Graph, Graph]:
    """(forward graph, the graph of `mode`: the training step or the inference pass) for the workload
    options in `args`."""
    forward = load_forward_graph(
        args.workload, batch=args.batch, seq_len=args.seq_len, image_size=args.image_size, num_classes=args.classes
    )
    precision = precision_named(args.precision, mode == "training", args.partial_sum)
    if mode != "training":
        return forward, inference_graph(forward, precision)
    return forward, derive_training_graph(forward, Optimizer(args.optimizer), precision, UpdatePlacement(args.updates))


def _cmd_workload_show(args: argparse.Namespace) -> int:
    forward, training = workload_graphs(args)
    precision = precision_named(args.precision, True, args.partial_sum)
    peaks = {u.value: memory_report(training if u.value == args.updates else
                                    derive_training_graph(forward, Optimizer(args.optimizer), precision, u)
                                    ).store_all_peak_bytes for u in UpdatePlacement}
    summary = workload_summary(forward, training, UpdatePlacement(args.updates), peaks)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def _cmd_workload_export(args: argparse.Namespace) -> int:
    check_output_file(args.output, "-o")
    _, training = workload_graphs(args)
    write_json_atomic(args.output, graph_to_dict(training))
    print(f"wrote {args.output}: {len(training.ops)} ops, {len(training.tensors)} tensors")
    return 0


def _cmd_hardware_list(args: argparse.Namespace) -> int:
    for name in builtin_hardware():
        hw = load_accelerator(name)
        print(f"{name:<16} {len(hw.cores)} cores  {hw.description}")
    return 0


def _cmd_hardware_show(args: argparse.Namespace) -> int:
    hw = load_accelerator(args.hardware)
    print(json.dumps(accelerator_to_dict(hw), indent=1) if args.json else format_accelerator(hw))
    return 0


def _cmd_hardware_import(args: argparse.Namespace) -> int:
    import yaml

    from monet_opt.model.hardware.importer import import_hardware, parse_unroll
    from monet_opt.io import write_text_atomic

    check_output_file(args.output, "-o")
    imported = import_hardware(args.source, args.file, parse_unroll(args.unroll))
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    write_text_atomic(args.output, yaml.safe_dump(imported.document, sort_keys=False, width=120))
    print(f"wrote {args.output}: {len(imported.document['cores'])} cores, {len(imported.notes)} notes")
    return 0


REPORT_RESERVE_S = 1.0
"""Seconds of a command's time limit kept for writing its --out files (plots, trace and JSON take
0.5-0.8 s for ResNet-18 and GPT-2 small training plans), at most a fifth of the limit: the limit
holds for the whole command."""


def _work_deadline(args: argparse.Namespace, limit_s: float) -> Deadline:
    """The deadline of a command's work: its time limit from its start, less REPORT_RESERVE_S when
    it writes --out files."""
    if getattr(args, "out", None):
        limit_s -= min(REPORT_RESERVE_S, 0.2 * limit_s)
    return Deadline(args.started, limit_s)


DEFAULT_INSTANCE = Path(__file__).resolve().parent.parent / "instances" / "default.yaml"


def _cmd_solve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from monet_opt.studies.instance import load_instance
    from monet_opt.io import write_text_atomic
    from monet_opt.studies.pipeline import solve_instance
    from monet_opt.report.solve_report import solve_report

    path = Path(args.instance) if args.instance else DEFAULT_INSTANCE
    if args.instance is None and not path.is_file():
        raise InputError(f"no instance given and no default instance at {path} (give INSTANCE.yaml)")
    if args.out:
        check_output_dir(args.out)
    instance = load_instance(path)
    work = _work_deadline(args, instance.time_limit_s if args.time_limit is None else args.time_limit)
    instance = replace(instance, time_limit_s=work.limit_s)
    solved = solve_instance(instance, args.workers, not args.quiet, work.started)
    data = solved.to_dict()
    if args.out:
        simulation = solved.simulation
        if simulation is not None:
            write_reports(simulation, args.out, workload=instance.workload, mode=instance.mode,
                          dynamic_dram_budget_bytes=getattr(solved.answer.target, "budget", None))
            os.replace(Path(args.out) / "result.json", Path(args.out) / "plan.json")
        write_json_atomic(Path(args.out) / "result.json", data)
        write_text_atomic(Path(args.out) / "report.md", solve_report(data))
    print(json.dumps(data, indent=1) if args.json else solve_report(data))
    return max(int(stage.result.exit_code) for stage in solved.stages)


def _cmd_bench(args: argparse.Namespace) -> int:
    from monet_opt.studies.bench import METHODS_BY_KIND, bench_exit_code, print_progress, run_bench, suite_instances

    check_output_dir(args.out)
    instances = suite_instances(args.instances, args.suite)
    methods = None
    if args.methods:
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        known = {m for ms in METHODS_BY_KIND.values() for m in ms}
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


def _cmd_sweep(args: argparse.Namespace) -> int:
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    if args.out:
        check_output_dir(args.out)
    hw = load_accelerator(args.hardware)
    graph = workload_graphs(args, args.mode)[1]
    table = CostTable(graph, hw)
    result = simulate(graph, hw, default_plan(graph, table), table)
    if args.out:
        write_reports(result, args.out, workload=args.workload, mode=args.mode)
    if args.json:
        print(json.dumps(result_to_dict(result, workload=args.workload, mode=args.mode, timeline=False), indent=1))
    else:
        print(format_result(result, workload=args.workload, mode=args.mode))
        if args.out:
            print(f"wrote {args.out}/result.json, gantt.png, memory.png, trace.json")
    if result.violations:
        print(f"monet: the plan violates {len(result.violations)} constraints, first: {result.violations[0].message}",
              file=sys.stderr)
        return int(ExitCode.VIOLATES)
    return 0


def _solver_options(args: argparse.Namespace) -> SolverOptions:
    export = None if args.export_model is None else Path(args.export_model)
    if export is not None:
        check_output_file(export, "--export-model")
    params = parse_cpsat_params(args.cpsat_params) if args.cpsat_params else ()
    return SolverOptions(time_limit_s=args.time_limit, workers=args.workers, seed=args.seed,
                         deterministic=args.deterministic, cpsat_params=params, log_search=args.log,
                         export_model=export, progress=not args.quiet)


def _print_sweep(rows: list, as_json: bool) -> None:
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=1))
        return
    print(f"{'budget':>14} {'cpsat':>14} {'status':>9} {'ga':>14} {'greedy':>14} {'sqrt(n)':>14}")
    for r in rows:
        cells = [f"{number_text(v):>14}" for v in (r.cpsat_cost, r.ga_cost, r.greedy_cost, r.sqrt_cost)]
        print(f"{number_text(r.budget):>14} {cells[0]} {r.cpsat_status:>9} {' '.join(cells[1:])}")


def _sweep_progress(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr, flush=True)


def _report(result: Result, args: argparse.Namespace, answer_file: str, workload: str | None = None,
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
    print(json.dumps(data, indent=1) if args.json else format_answer(data))
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


def _cmd_checkpoint_graph(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from monet_opt.solving.genetic import GAConfig
    from monet_opt.families.remat.family import default_order, remat_family
    from monet_opt.families.remat.problem import load_problem, store_all_peak
    from monet_opt.families.remat.sweep import budget_sweep, write_remat_sweep

    deadline = _work_deadline(args, args.time_limit)
    options = _solver_options(args)
    budget = None if args.sweep else Budget.parse(args.budget)
    if args.out:
        check_output_dir(args.out)
    problem = load_problem(args.graph)
    problem = replace(problem, free_order=(args.order or default_order(problem)) == "free")
    ga = GAConfig(population=args.population, generations=args.generations, seed=args.seed)
    if args.sweep:
        rows = budget_sweep(problem, args.sweep, options, ga, deadline,
                            progress=(lambda _: None) if args.quiet else _sweep_progress)
        if args.out:
            write_remat_sweep(problem, rows, args.out)
        _print_sweep(rows, args.json)
        return 0
    target = CostUnderBudget(budget.resolve(store_all_peak(problem), problem.size_scale))
    result = solve(remat_family(ga), problem, target, args.method, options, deadline)
    return _report(result, args, "result.json")


def _local_budgets(items: list[str] | None, hw: Accelerator) -> dict[str, int]:
    """--local-budget MEMORY=BYTES|P% (of the memory's capacity), repeatable."""
    budgets = {}
    for item in items or []:
        memory, _, text = item.partition("=")
        if memory not in hw.memories or not text:
            raise InputError(f"--local-budget {item!r}: expected MEMORY=BYTES|P% with MEMORY one of "
                             f"{', '.join(hw.memories)}")
        budgets[memory] = Budget.parse(text, f"--local-budget {memory}").resolve(hw.memories[memory].capacity_bytes)
    return budgets


def _cmd_checkpoint_training(args: argparse.Namespace) -> int:
    from monet_opt.families.checkpoint.family import CheckpointProblem, checkpoint_family
    from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
    from monet_opt.families.checkpoint.sweep import training_budget_sweep
    from monet_opt.solving.genetic import GAConfig
    from monet_opt.families.remat.sweep import write_sweep

    deadline = _work_deadline(args, args.time_limit)
    options = _solver_options(args)
    budget = None if args.sweep else Budget.parse(args.budget)
    if args.out:
        check_output_dir(args.out)
    hw = load_accelerator(args.hardware)
    limits = _local_budgets(args.local_budget, hw)
    training = workload_graphs(args)[1]
    space = CheckpointSpace(training, hw, local_budget_bytes=limits)
    problem = CheckpointProblem(space, OBJECTIVES[args.objective], free_order=args.order == "free")
    ga = GAConfig(population=args.population, generations=args.generations, seed=args.seed)
    if args.sweep:
        rows = training_budget_sweep(problem, args.sweep, options, ga, deadline,
                                     progress=(lambda _: None) if args.quiet else _sweep_progress)
        if args.out:
            write_sweep(rows, args.out, base_cost=space.store_all.objective(problem.weights),
                        cost_label=problem.weights.name,
                        title=f"{training.name} on {hw.name}: {problem.weights.name} overhead vs activation budget",
                        budget_label="activation budget: dynamic DRAM peak [bytes]")
        _print_sweep(rows, args.json)
        return 0
    target = CostUnderBudget(_dynamic_budget(budget, args.budget_scope, space))
    result = solve(checkpoint_family(ga), problem, target, args.method, options, deadline)
    return _report(result, args, "checkpoint.json", workload=args.workload)


def _dynamic_budget(budget: Budget, scope: str, space: CheckpointSpace) -> int:
    """The dynamic DRAM budget (bytes) of --budget: itself (scope "dynamic", percentages of the
    store-all dynamic peak), or (scope "dram") the whole DRAM budget, percentages of the store-all
    DRAM peak, less the static DRAM bytes, which every plan of the space holds all step long."""
    store_all = space.store_all
    if scope == "dynamic":
        return budget.resolve(store_all.dynamic_dram_peak_bytes)
    static = store_all.simulation.static_dram_bytes
    whole = budget.resolve(static + store_all.dynamic_dram_peak_bytes)
    if whole <= static:
        raise InputError(f"--budget-scope dram: a DRAM budget of {whole} bytes does not even hold the {static} "
                         "static bytes (weights, optimizer states, gradients updated at the end)")
    return whole - static


def _cmd_allocate(args: argparse.Namespace) -> int:
    from monet_opt.families.allocation.family import AllocationGoal, AllocationInstance, allocation_family
    from monet_opt.families.allocation.ga import stream_ga_config
    from monet_opt.families.allocation.problem import from_training, load_instance

    deadline = _work_deadline(args, args.time_limit)
    if (args.instance is None) == (args.workload is None):
        raise InputError("allocate: give either --instance FILE or --workload W with --hardware H")
    options = _solver_options(args)
    if args.out:
        check_output_dir(args.out)
    if args.workload is not None:
        if args.hardware is None:
            raise InputError("allocate --workload needs --hardware NAME|FILE.yaml")
        hw = load_accelerator(args.hardware)
        training = workload_graphs(args)[1]
        table = CostTable(training, hw)
        instance = AllocationInstance(from_training(training, hw, table), training, hw, table)
    else:
        instance = AllocationInstance(load_instance(args.instance))
    ga = stream_ga_config(population=args.population, generations=args.generations, seed=args.seed)
    result = solve(allocation_family(ga), instance, AllocationGoal(args.objective), args.method, options, deadline)
    return _report(result, args, "allocation.json", workload=args.workload)


def _cmd_fuse(args: argparse.Namespace) -> int:
    from monet_opt.families.fusion.family import fusion_family, schedule_on_cores
    from monet_opt.families.fusion.heuristics import GA_PRESETS
    from monet_opt.families.fusion.space import FusionObjective, fusion_space
    from monet_opt.solving.genetic import GAConfig

    deadline = _work_deadline(args, args.time_limit)
    options = _solver_options(args)
    budget = _fuse_budget(args)
    if args.out:
        check_output_dir(args.out)
    hw = load_accelerator(args.hardware)
    graph = workload_graphs(args, args.mode)[1]
    if budget is not None:
        from monet_opt.families.checkpoint.space import OBJECTIVES, CheckpointSpace
        from monet_opt.families.fusion_checkpoint.joint import FusedCheckpointProblem
        from monet_opt.families.fusion_checkpoint.family import FUSION_CHECKPOINT

        limits = _local_budgets(args.local_budget, hw)
        store_all = CheckpointSpace(graph, hw, local_budget_bytes=limits).store_all.dynamic_dram_peak_bytes
        bytes_ = budget.resolve(store_all)
        problem = FusedCheckpointProblem(graph, hw, args.max_stack, OBJECTIVES[args.objective], bytes_, limits)
        result = solve(FUSION_CHECKPOINT, problem, CostUnderBudget(bytes_), "cpsat", options, deadline)
        return _report(result, args, "fusion.json", workload=args.workload, mode=args.mode)
    fusion_deadline = deadline.share(0.5) if args.schedule else deadline  # the rest schedules the stacks
    space = fusion_space(graph, CostTable(graph, hw), args.max_stack, FusionObjective(args.objective), fusion_deadline,
                         enumerate_stacks=args.method == "cpsat")
    preset = GA_PRESETS[args.ga_preset]
    ga = GAConfig(args.population or preset.population, args.generations or preset.generations,
                  preset.crossover_probability, preset.mutation_probability, args.seed)
    result = solve(fusion_family(ga), space, space.objective, args.method, options, fusion_deadline)
    multi_core = None
    if args.schedule and result.payload is not None:
        multi_core = schedule_on_cores(space, result.payload, "cpsat", options, deadline)
    return _report(result, args, "fusion.json", workload=args.workload, mode=args.mode, multi_core=multi_core)


def _fuse_budget(args: argparse.Namespace) -> Budget | None:
    """The activation budget of `monet fuse --with-checkpointing`, checked against the other options."""
    if not args.with_checkpointing:
        for option, given in (("--budget", args.budget is not None), ("--local-budget", bool(args.local_budget))):
            if given:
                raise InputError(f"fuse: {option} needs --with-checkpointing")
        return None
    problems = [("--budget B|P% is required", args.budget is None),
                (f"--objective {args.objective} (latency or energy only)", args.objective not in ("latency", "energy")),
                (f"--method {args.method} (cpsat only)", args.method != "cpsat"),
                ("--mode inference (no backward pass to checkpoint)", args.mode != "training"),
                ("--schedule", args.schedule)]
    wrong = [text for text, bad in problems if bad]
    if wrong:
        raise InputError(f"fuse --with-checkpointing: {wrong[0]}")
    return Budget.parse(args.budget)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The `monet` parser. The options of a solving command (which list its family's methods, so
    they import the solvers) are added only for the command named in `argv` (None: for all)."""
    parser = _Parser(prog="monet", description="Model and optimise neural-network training on dataflow accelerators.")
    parser.add_argument("--version", action="version", version=f"monet_opt {package_version('monet_opt')}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    workload = commands.add_parser("workload", help="training graphs of built-in or ONNX models")
    workload_cmds = workload.add_subparsers(dest="workload_command", required=True, parser_class=_Parser)
    show = workload_cmds.add_parser("show", help="parameters, MACs, ops and memory of one training step")
    add_workload_arguments(show)
    show.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    show.set_defaults(handler=_cmd_workload_show)
    export = workload_cmds.add_parser("export", help="write the training graph as JSON")
    add_workload_arguments(export)
    export.add_argument("-o", "--output", type=_path, required=True, metavar="FILE.json")
    export.set_defaults(handler=_cmd_workload_export)

    hardware = commands.add_parser("hardware", help="accelerator descriptions")
    hardware_cmds = hardware.add_subparsers(dest="hardware_command", required=True, parser_class=_Parser)
    hardware_cmds.add_parser("list", help="the built-in library").set_defaults(handler=_cmd_hardware_list)
    hw_show = hardware_cmds.add_parser("show", help="one accelerator, built-in or YAML file")
    hw_show.add_argument("hardware", metavar="NAME|FILE.yaml")
    hw_show.add_argument("--json", action="store_true")
    hw_show.set_defaults(handler=_cmd_hardware_show)
    hw_import = hardware_cmds.add_parser("import", help="translate a ZigZag core or a Stream accelerator")
    hw_import.add_argument("--from", dest="source", choices=["zigzag", "stream"], required=True)
    hw_import.add_argument("file", metavar="FILE.yaml")
    hw_import.add_argument("-o", "--output", type=_path, required=True, metavar="OUT.yaml")
    hw_import.add_argument("--unroll", metavar="D1=K,D2=C",
                           help="the loop dimension each array dimension unrolls (default D1=K,D2=C,D3=OX)")
    hw_import.set_defaults(handler=_cmd_hardware_import)

    solve_cmd = commands.add_parser("solve", help="solve one instance file: fusion, checkpointing and allocation as it "
                                    "says, against the layer-by-layer baseline")
    solve_cmd.add_argument("instance", nargs="?", metavar="INSTANCE.yaml",
                           help="the instance (default: instances/default.yaml of the source tree)")
    solve_cmd.add_argument("--time-limit", type=_positive_float, metavar="S",
                           help="wall-clock seconds for the whole command (default: the instance's time_limit)")
    solve_cmd.add_argument("--workers", type=_positive_int, default=2, help="solver threads (default 2)")
    solve_cmd.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    add_output_arguments(solve_cmd, "result.json, report.md, and the plan's plan.json, gantt.png, memory.png, "
                                    "trace.json")
    solve_cmd.set_defaults(handler=_cmd_solve)

    bench = commands.add_parser("bench", help="every instance of a suite x every method: a validated table with plots "
                                "(resumes where it stopped)")
    bench.add_argument("--suite", choices=["quick", "full"], default="quick", help="quick, or full (quick included)")
    bench.add_argument("--methods", metavar="M,...", help="training: joint, sequential, ga, heuristic; remat: cpsat, "
                       "milp, ga, greedy; allocation: cpsat, ga, greedy (default: every method of each kind)")
    bench.add_argument("--instances", default=str(DEFAULT_INSTANCE.parent), metavar="DIR",
                       help="the instances directory (default: instances/ of the source tree)")
    bench.add_argument("--out", type=_path, default="bench-results", metavar="DIR",
                       help="rows.jsonl (kept across runs), bench.csv, bench.md, plots (default bench-results)")
    bench.add_argument("--time-limit", type=_positive_float, metavar="S",
                       help="wall-clock seconds for the whole command; rows not started by then wait for a rerun")
    bench.add_argument("--row-time-limit", type=_positive_float, metavar="S",
                       help="seconds per row (default: each instance's time_limit)")
    bench.add_argument("--workers", type=_positive_int, default=2, help="solver threads (default 2)")
    bench.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    bench.set_defaults(handler=_cmd_bench)

    sweep = commands.add_parser("sweep", help="price the points of a hardware design space on a workload "
                                "(resumes where it stopped)")
    sweep.add_argument("space", metavar="SPACE.yaml", help="a design space (README: Design spaces)")
    add_workload_arguments(sweep, positional=False)
    sweep.add_argument("--mode", choices=["training", "inference", "both"], default="both", help="default: both")
    sweep.add_argument("--plan", choices=["default", "rule", "optimised"], default="default",
                       help="default: layer by layer on the earliest core; rule: the fixed fusion rule, stack by "
                            "stack; optimised: fusion by CP-SAT for the least energy-delay product, per point")
    sweep.add_argument("--point-time-limit", type=_positive_float, metavar="S",
                       help="seconds of search per point and mode with --plan optimised (default 5)")
    sweep.add_argument("--samples", type=_positive_int, metavar="N", help="N points drawn uniformly (with --seed)")
    sweep.add_argument("--grid", action="store_true", help="every point that satisfies the constraints")
    sweep.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    sweep.add_argument("--executor", choices=["local", "dask"], default="local",
                       help="local: a process pool; dask: Dask distributed (default local)")
    sweep.add_argument("--address", metavar="A", help="a Dask scheduler address (default: a LocalCluster)")
    sweep.add_argument("--workers", type=_positive_int, default=2, help="processes (local) or LocalCluster workers")
    sweep.add_argument("--points-per-task", type=_positive_int, metavar="N",
                       help="points per task (default 100; 1 with --plan optimised)")
    sweep.add_argument("--out", type=_path, default="sweep-results", metavar="DIR",
                       help="sweep.json, parts/ (kept across runs), results.parquet (default sweep-results)")
    sweep.add_argument("--time-limit", type=_positive_float, metavar="S",
                       help="wall-clock seconds for the whole command: no point starts after it (exit 4; the same "
                            "command resumes)")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    sweep.set_defaults(handler=_cmd_sweep)

    evaluate = commands.add_parser("evaluate", help="simulate one training (or inference) step with the default plan")
    add_workload_arguments(evaluate, positional=False)
    evaluate.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    evaluate.add_argument("--mode", choices=["training", "inference"], default="training")
    evaluate.add_argument("--out", type=_path, metavar="DIR",
                          help="write result.json, gantt.png, memory.png, trace.json")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_cmd_evaluate)

    checkpoint = commands.add_parser("checkpoint", help="activation checkpointing under a memory budget")
    checkpoint_cmds = checkpoint.add_subparsers(dest="checkpoint_command", required=True, parser_class=_Parser)
    solving = {
        ("checkpoint", "graph"): (checkpoint_cmds, "an abstract rematerialisation graph (node-link JSON or YAML)",
                                  _populate_checkpoint_graph),
        ("checkpoint", "training"): (checkpoint_cmds, "a training graph priced on an accelerator",
                                     _populate_checkpoint_training),
        ("allocate",): (commands, "assign ops to cores and order them (makespan, energy, Pareto)", _populate_allocate),
        ("fuse",): (commands, "choose which ops run as fused stacks (layer fusion)", _populate_fuse),
    }
    words = [a for a in (argv or []) if not a.startswith("-")]
    for path, (group, summary, populate) in solving.items():
        sub = group.add_parser(path[-1], help=summary)
        if argv is None or tuple(words[:len(path)]) == path:
            populate(sub)
    return parser


def _populate_checkpoint_graph(graph: argparse.ArgumentParser) -> None:
    from monet_opt.families.remat.family import REMAT

    graph.add_argument("graph", metavar="FILE.json|FILE.yaml",
                       help="node-link JSON (node attributes cost_cpu, cost_ram) or the project's YAML")
    add_budget_arguments(graph, "absolute budget (the graph's size unit) or a percentage of the store-all peak")
    graph.add_argument("--order", choices=["fixed", "free"],
                       help="first executions in the graph's reference order, or in any topological order (cpsat "
                            "searches it; default: free for graphs of at most 60 nodes, else fixed)")
    add_solving_arguments(graph, REMAT, (100, 50), "result.json (or sweep.csv and sweep.png)", _cmd_checkpoint_graph)


def _populate_checkpoint_training(training: argparse.ArgumentParser) -> None:
    from monet_opt.families.checkpoint.family import CHECKPOINT
    from monet_opt.families.checkpoint.space import OBJECTIVES

    add_workload_arguments(training, positional=False)
    training.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    add_budget_arguments(training, "bytes of dynamic DRAM (activations and transient gradients), or a percentage "
                                   "of the store-all peak")
    training.add_argument("--objective", choices=list(OBJECTIVES), default="latency",
                          help="what the plan minimises (default latency)")
    training.add_argument("--budget-scope", choices=["dynamic", "dram"], default="dynamic",
                          help="what --budget bounds: the dynamic DRAM peak (default) or the whole DRAM peak, static "
                               "weights, optimizer states and gradients included (a percentage is then of the "
                               "store-all DRAM peak)")
    training.add_argument("--order", choices=["fixed", "free"], default="fixed",
                          help="ops run in the training graph's reference order (default), or cpsat chooses the order "
                               "too: every valid order when there are at most 24, else the reference order and two "
                               "list schedules, each solved exactly")
    training.add_argument("--local-budget", action="append", metavar="MEMORY=B|P%",
                          help="bound a local memory below its capacity (bytes or %% of it; repeatable)")
    add_solving_arguments(training, CHECKPOINT, (100, 50), "checkpoint.json and the plan's result.json, gantt.png, "
                          "memory.png, trace.json (or sweep.csv and sweep.png)", _cmd_checkpoint_training)


def _populate_allocate(allocate: argparse.ArgumentParser) -> None:
    from monet_opt.families.allocation.family import ALLOCATION
    from monet_opt.families.allocation.family import OBJECTIVES as ALLOCATION_OBJECTIVES

    allocate.add_argument("--instance", metavar="FILE.yaml", help="abstract allocation instance (see instances/allocation)")
    add_workload_arguments(allocate, positional=False, required=False)
    allocate.add_argument("--hardware", metavar="NAME|FILE.yaml", help="accelerator of a --workload")
    allocate.add_argument("--objective", choices=list(ALLOCATION_OBJECTIVES), default="latency",
                          help="latency (makespan), energy, or pareto (epsilon-constraint front); default latency")
    add_solving_arguments(allocate, ALLOCATION, (64, 250), "allocation.json (--workload: also result.json, gantt.png, "
                          "memory.png, trace.json; a front: front.csv, front.png)", _cmd_allocate)


def _populate_fuse(fuse: argparse.ArgumentParser) -> None:
    from monet_opt.families.fusion.family import FUSION
    from monet_opt.families.fusion.heuristics import GA_PRESETS
    from monet_opt.families.fusion.space import FusionObjective

    add_workload_arguments(fuse, positional=False)
    fuse.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    fuse.add_argument("--mode", choices=["training", "inference"], default="training")
    fuse.add_argument("--max-stack", type=_positive_int, default=6, metavar="K",
                      help="most ops in one fused stack (default 6)")
    fuse.add_argument("--objective", choices=[o.value for o in FusionObjective], default="latency",
                      help="what the partition minimises: serial latency, energy, DRAM bytes or energy-delay "
                           "product (default latency)")
    fuse.add_argument("--with-checkpointing", action="store_true",
                      help="choose the stacks together with activation checkpointing under --budget (an exact joint "
                           "search on graphs up to 40 ops, else fusion and checkpointing alternated, each exact "
                           "given the other; method cpsat, objective latency or energy, training mode)")
    fuse.add_argument("--budget", metavar="B|P%",
                      help="with --with-checkpointing: bytes of dynamic DRAM (activations and transient gradients), "
                           "or a percentage of the unfused store-all peak")
    fuse.add_argument("--local-budget", action="append", metavar="MEMORY=B|P%",
                      help="with --with-checkpointing: bound a local memory below its capacity (bytes or %% of it; "
                           "repeatable)")
    fuse.add_argument("--schedule", action="store_true",
                      help="also schedule the chosen stacks on every core (allocation CP-SAT, half of the time "
                           "limit) and report the multi-core makespan")
    fuse.add_argument("--ga-preset", choices=list(GA_PRESETS), default="monet",
                      help="the GA's settings: monet (100 x 50, crossover 0.9, mutation 0.1) or stream (64 x 250, "
                           "0.3, 0.7); default monet")
    fuse.add_argument("--population", type=_positive_int, help="GA population (default: the preset's)")
    fuse.add_argument("--generations", type=_positive_int, help="GA generations (default: the preset's)")
    add_solving_arguments(fuse, FUSION, None, "fusion.json and the plan's result.json, gantt.png, memory.png, "
                          "trace.json (with --schedule also multi_core/)", _cmd_fuse)


def add_budget_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--budget B|P% or --sweep POINTS (one of them)."""
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--budget", metavar="B|P%", help=what)
    target.add_argument("--sweep", type=_positive_int, metavar="POINTS",
                        help="sweep POINTS budgets from the smallest feasible to store-all (CP-SAT, GA, greedy, sqrt(n))")


def add_solving_arguments(p: argparse.ArgumentParser, family: Family, ga_size: tuple[int, int] | None, files: str,
                          handler: Callable[[argparse.Namespace], int]) -> None:
    """What every solving command takes: --method (the family's), the solver options, the GA's
    size (population, generations: the field's defaults for this decision; None: the command
    defines its GA options itself), --out and --json."""
    add_method_argument(p, family)
    add_solver_arguments(p)
    if ga_size is not None:
        add_ga_arguments(p, *ga_size)
    add_output_arguments(p, files)
    p.set_defaults(handler=handler)


def add_method_argument(p: argparse.ArgumentParser, family: Family) -> None:
    """--method with the family's registered methods, each named with its one-line summary."""
    summaries = "; ".join(f"{m.name}: {m.summary}" for m in family.methods.values())
    p.add_argument("--method", choices=list(family.methods), default="cpsat", help=f"{summaries} (default cpsat)")


def add_output_arguments(p: argparse.ArgumentParser, files: str) -> None:
    """--out DIR and --json: shared by every command that answers."""
    p.add_argument("--out", type=_path, metavar="DIR", help=f"write {files}")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (the README's shared keys)")


def add_solver_arguments(p: argparse.ArgumentParser) -> None:
    """Time limit, workers, seed and CP-SAT passthrough: shared by every command that solves."""
    p.add_argument("--time-limit", type=_positive_float, default=60.0, metavar="S",
                   help="wall-clock seconds for the whole command, set-up and warm starts included (default 60)")
    p.add_argument("--workers", type=_positive_int, default=2, help="solver threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true",
                   help="reproducible CP-SAT runs with several workers (slower)")
    p.add_argument("--cpsat-params", metavar="KEY:VALUE,...",
                   help="raw CP-SAT SatParameters, applied last (e.g. linearization_level:2,symmetry_level:4)")
    p.add_argument("--log", action="store_true", help="CP-SAT's search log on stderr")
    p.add_argument("--export-model", metavar="FILE", help="write the CP-SAT model (.pb binary, else text proto)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def add_ga_arguments(p: argparse.ArgumentParser, population: int, generations: int) -> None:
    """--population, --generations with the defaults of the GA the field knows for this decision."""
    p.add_argument("--population", type=_positive_int, default=population, help=f"GA population (default {population})")
    p.add_argument("--generations", type=_positive_int, default=generations,
                   help=f"GA generations (default {generations})")


def main(argv: Sequence[str] | None = None) -> int:
    started = time.perf_counter()  # --time-limit counts from here: parsing imports the solvers
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed, one line)
        return int(exc.code or 0)
    args.started = started
    args.command_line = "monet " + " ".join(argv)
    try:
        return args.handler(args)
    except MonetError as exc:
        print(f"monet: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except SolverBug as exc:
        print(f"monet: internal error (a bug, please report it): {_one_line(exc)}", file=sys.stderr)
        return int(ExitCode.BUG)
    except BrokenPipeError:  # the reader of stdout went away (`monet ... | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # an output that could not be written after the checks (disk full, a file vanished)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"monet: error: {where}{exc.strerror or _one_line(exc)}", file=sys.stderr)
        return int(ExitCode.INPUT)
    except KeyboardInterrupt as exc:
        stopped = "terminated" if isinstance(exc, Terminated) else "interrupted"
        print(f"monet: {stopped}; nothing more was written", file=sys.stderr)
        return int(ExitCode.TERMINATED if isinstance(exc, Terminated) else ExitCode.INTERRUPTED)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the work is, so that it ends as a Ctrl-C does (`run`)."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def run() -> None:
    """The `monet` command: `main` with SIGTERM ending the work as Ctrl-C does (exit 143, 130 for
    Ctrl-C: temporary files removed, worker processes stopped), then exit without the interpreter's
    final garbage collection (everything is written by then; after a large solve that collection
    alone took 0.5 s, which `--time-limit` would not cover), and after an interruption without the
    interpreter's finalization at all."""
    signal.signal(signal.SIGTERM, _terminate)
    code = main()
    if code in (ExitCode.INTERRUPTED, ExitCode.TERMINATED):
        # everything is written or removed by now; the interpreter's finalization is skipped, because
        # after a CP-SAT search stopped half-way the solver library's static destructors may abort
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
