"""The `monet` command line. Errors are one line on stderr with exit 2 (bad input) or 3 (infeasible)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from monet_opt.cost import CostTable
from monet_opt.errors import InputError, MonetError
from monet_opt.hardware import Accelerator, builtin_hardware, load_accelerator
from monet_opt.hardware.describe import accelerator_to_dict, format_accelerator
from monet_opt.io import write_json_atomic
from monet_opt.report import format_result, result_to_dict, write_reports
from monet_opt.schedule import default_plan, simulate
from monet_opt.solvers.common import SolverOptions
from monet_opt.report.pareto import write_front
from monet_opt.solvers.allocation.ga import stream_ga_config
from monet_opt.solvers.allocation.problem import from_training, load_instance
from monet_opt.solvers.allocation.solve import METHODS as ALLOCATION_METHODS
from monet_opt.solvers.allocation.solve import OBJECTIVES as ALLOCATION_OBJECTIVES
from monet_opt.solvers.allocation.solve import AllocationInstance, solve_allocation
from monet_opt.solvers.checkpoint.solve import METHODS as TRAINING_METHODS
from monet_opt.solvers.checkpoint.solve import solve_checkpoint
from monet_opt.solvers.checkpoint.space import OBJECTIVES, CheckpointSpace
from monet_opt.solvers.checkpoint.sweep import training_budget_sweep
from monet_opt.solvers.genetic import GAConfig
from monet_opt.solvers.remat.problem import load_problem, parse_budget, store_all_peak
from monet_opt.solvers.remat.solve import METHODS, solve_remat
from monet_opt.solvers.remat.sweep import SweepRow, budget_sweep, write_remat_sweep, write_sweep
from monet_opt.training import PRECISIONS, Optimizer, derive_training_graph, inference_graph
from monet_opt.training.summary import format_summary, workload_summary
from monet_opt.workload import BUILTIN_MODELS, Graph, load_forward_graph
from monet_opt.workload.serialize import graph_to_dict


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
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


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
    p.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32", help="element types per role (default fp32)")


def training_graph_from_args(args: argparse.Namespace) -> tuple[Graph, Graph]:
    """(forward graph, training graph) for the workload options in `args`."""
    forward = load_forward_graph(
        args.workload, batch=args.batch, seq_len=args.seq_len, image_size=args.image_size, num_classes=args.classes
    )
    training = derive_training_graph(forward, Optimizer(args.optimizer), PRECISIONS[args.precision])
    return forward, training


def _cmd_workload_show(args: argparse.Namespace) -> int:
    forward, training = training_graph_from_args(args)
    summary = workload_summary(forward, training)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def _cmd_workload_export(args: argparse.Namespace) -> int:
    _, training = training_graph_from_args(args)
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


def _cmd_evaluate(args: argparse.Namespace) -> int:
    hw = load_accelerator(args.hardware)
    forward, training = training_graph_from_args(args)
    graph = training if args.mode == "training" else inference_graph(forward)
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
    return 0


def _solver_options(args: argparse.Namespace) -> SolverOptions:
    return SolverOptions(time_limit_s=args.time_limit, workers=args.workers, seed=args.seed,
                         deterministic=args.deterministic)


def _gap_text(gap: float | None) -> str:
    return "-" if gap is None else f"{100 * gap:.2f} %"


def _print_sweep(rows: list[SweepRow], as_json: bool) -> None:
    if as_json:
        print(json.dumps([row.__dict__ for row in rows], indent=1))
        return
    print(f"{'budget':>12} {'cpsat':>14} {'status':>9} {'ga':>14} {'greedy':>14} {'sqrt(n)':>14}")
    for r in rows:
        cells = [f"{v:>14g}" if isinstance(v, float | int) else f"{'-':>14}" for v in
                 (r.cpsat_cost, r.ga_cost, r.greedy_cost, r.sqrt_cost)]
        print(f"{r.budget:>12g} {cells[0]} {r.cpsat_status:>9} {' '.join(cells[1:])}")


def _sweep_progress(message: str) -> None:
    print(f"sweep: {message}", file=sys.stderr)


def _cmd_checkpoint(args: argparse.Namespace) -> int:
    if (args.graph is None) == (args.workload is None):
        raise InputError("checkpoint: give either --graph FILE or --workload W with --hardware H")
    if args.workload is not None:
        return _checkpoint_training(args)
    if args.method not in METHODS or args.objective != "latency":
        what = f"--method {args.method}" if args.method not in METHODS else f"--objective {args.objective}"
        raise InputError(f"checkpoint --graph: {what} applies to training graphs (--workload) only")
    problem = load_problem(args.graph)
    options = _solver_options(args)
    ga = GAConfig(population=args.population, generations=args.generations, seed=args.seed)
    if args.sweep:
        rows = budget_sweep(problem, args.sweep, options, ga, progress=_sweep_progress)
        if args.out:
            write_remat_sweep(problem, rows, args.out)
        _print_sweep(rows, args.json)
        return 0
    budget = parse_budget(args.budget, store_all_peak(problem), problem.size_scale)
    result = solve_remat(problem, budget, args.method, options, ga)
    data = result.to_dict()
    if args.out:
        write_json_atomic(Path(args.out) / "result.json", data)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        gap = _gap_text(data["gap"])
        print(f"{problem.name}: {args.method} at budget {data['budget']:g} (store-all peak {data['store_all_peak']:g})")
        print(f"status {data['status']}, cost {data['objective']} (store-all {data['store_all_cost']:g}), "
              f"bound {data['bound']}, gap {gap}")
        print(f"peak memory {data['peak_memory']}, recomputations {data['recomputations']}, "
              f"validated {data['validated']}, {data['solve_time_s']:.2f} s")
    return 0


def _workload_on_hardware(args: argparse.Namespace, command: str) -> tuple[Graph, Accelerator]:
    """The training graph of --workload and the accelerator of --hardware (which it needs)."""
    if args.hardware is None:
        raise InputError(f"{command} --workload needs --hardware NAME|FILE.yaml")
    hw = load_accelerator(args.hardware)
    return training_graph_from_args(args)[1], hw


def _local_budgets(items: list[str] | None, hw: Accelerator) -> dict[str, int]:
    """--local-budget MEMORY=BYTES|P% (of the memory's capacity), repeatable."""
    budgets = {}
    for item in items or []:
        memory, _, text = item.partition("=")
        if memory not in hw.memories or not text:
            raise InputError(f"--local-budget {item!r}: expected MEMORY=BYTES|P% with MEMORY one of "
                             f"{', '.join(hw.memories)}")
        budgets[memory] = parse_budget(text, hw.memories[memory].capacity_bytes, source=f"--local-budget {memory}")
    return budgets


def _checkpoint_training(args: argparse.Namespace) -> int:
    if args.method not in TRAINING_METHODS:
        raise InputError(f"checkpoint --workload: --method {args.method} applies to --graph only "
                         f"(training graphs: {', '.join(TRAINING_METHODS)})")
    training, hw = _workload_on_hardware(args, "checkpoint")
    space = CheckpointSpace(training, hw, local_budget_bytes=_local_budgets(args.local_budget, hw))
    objective = OBJECTIVES[args.objective]
    options = _solver_options(args)
    ga = GAConfig(population=args.population, generations=args.generations, seed=args.seed)
    if args.sweep:
        rows = training_budget_sweep(space, objective, args.sweep, options, ga, progress=_sweep_progress)
        if args.out:
            base = space.store_all.objective(objective)
            write_sweep(rows, args.out, base_cost=base, cost_label=objective.name,
                        title=f"{training.name} on {hw.name}: {objective.name} overhead vs activation budget",
                        budget_label="activation budget: dynamic DRAM peak [bytes]")
        _print_sweep(rows, args.json)
        return 0
    budget = parse_budget(args.budget, space.store_all.dynamic_dram_peak_bytes)
    result = solve_checkpoint(space, objective, budget, args.method, options, ga)
    data = result.to_dict(space)
    if args.out:
        if result.evaluation is not None:
            write_reports(result.evaluation.simulation, args.out, workload=args.workload, mode="training")
        write_json_atomic(Path(args.out) / "checkpoint.json", data)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        print(format_checkpoint(data))
        if args.out:
            print(f"wrote {args.out}/checkpoint.json" + (", result.json, gantt.png, memory.png, trace.json"
                                                          if result.evaluation is not None else ""))
    return 0


def format_checkpoint(data: dict) -> str:
    """Readable summary of a training-graph checkpoint result (`CheckpointResult.to_dict`)."""
    base = data["store_all"]
    lines = [f"{data['workload']} on {data['hardware']}: {data['method']}, objective {data['objective_kind']}, "
             f"activation budget {data['budget']:,} bytes (store-all peak {base['peak_memory']:,})"]
    if data["latency_cycles"] is None:
        lines.append(f"status {data['status']}: no plan within the budget")
        return "\n".join(lines)
    gap = _gap_text(data["gap"])
    lines += [
        f"status {data['status']}, bound {data['bound']}, gap {gap}, {data['solve_time_s']:.2f} s, "
        f"validated {data['validated']}",
        f"latency {data['latency_cycles']:,} cycles ({100 * data['latency_overhead']:+.2f} % vs store-all), "
        f"energy {data['energy_pj'] / 1e6:,.2f} uJ ({100 * data['energy_overhead']:+.2f} %)",
        f"activation peak {data['peak_memory']:,} bytes; saved activations: "
        + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in data["choices"].items())
        + f"; fused recompute groups {len(data['recompute_groups'])}",
    ]
    return "\n".join(lines)


def _cmd_allocate(args: argparse.Namespace) -> int:
    if (args.instance is None) == (args.workload is None):
        raise InputError("allocate: give either --instance FILE or --workload W with --hardware H")
    if args.workload is not None:
        training, hw = _workload_on_hardware(args, "allocate")
        table = CostTable(training, hw)
        instance = AllocationInstance(from_training(training, hw, table), training, hw, table)
    else:
        instance = AllocationInstance(load_instance(args.instance))
    ga = stream_ga_config(population=args.population, generations=args.generations, seed=args.seed)
    result = solve_allocation(instance, args.method, args.objective, _solver_options(args), ga)
    data = result.to_dict(instance)
    if args.out:
        best = result.best
        if best is not None and best.simulation is not None:
            write_reports(best.simulation, args.out, workload=args.workload, mode="training")
        if args.objective == "pareto":
            write_front([(v.latency_cycles, v.energy_pj) for v in result.front], args.out,
                        f"{instance.problem.name}: {args.method} front")
        write_json_atomic(Path(args.out) / "allocation.json", data)
    if args.json:
        print(json.dumps(data, indent=1))
    else:
        gap = _gap_text(data["gap"])
        print(f"{data['problem']}: {args.method}, objective {args.objective}")
        print(f"status {data['status']}, latency {data['latency_cycles']:,} cycles, energy {data['energy_pj']:.6g} pJ, "
              f"bound {data['bound']}, gap {gap}, {data['solve_time_s']:.2f} s, validated {data['validated']}")
        print(f"cores used: {', '.join(data['cores_used'])}")
        if args.objective == "pareto":
            print("front: " + "; ".join(f"{p['latency_cycles']:,} cycles / {p['energy_pj']:.6g} pJ"
                                        for p in data["front"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="monet", description="Model and optimise neural-network training on dataflow accelerators.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    workload = commands.add_parser("workload", help="training graphs of built-in or ONNX models")
    workload_cmds = workload.add_subparsers(dest="workload_command", required=True, parser_class=_Parser)
    show = workload_cmds.add_parser("show", help="parameters, MACs, ops and memory of one training step")
    add_workload_arguments(show)
    show.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    show.set_defaults(handler=_cmd_workload_show)
    export = workload_cmds.add_parser("export", help="write the training graph as JSON")
    add_workload_arguments(export)
    export.add_argument("-o", "--output", required=True, metavar="FILE.json")
    export.set_defaults(handler=_cmd_workload_export)

    hardware = commands.add_parser("hardware", help="accelerator descriptions")
    hardware_cmds = hardware.add_subparsers(dest="hardware_command", required=True, parser_class=_Parser)
    hardware_cmds.add_parser("list", help="the built-in library").set_defaults(handler=_cmd_hardware_list)
    hw_show = hardware_cmds.add_parser("show", help="one accelerator, built-in or YAML file")
    hw_show.add_argument("hardware", metavar="NAME|FILE.yaml")
    hw_show.add_argument("--json", action="store_true")
    hw_show.set_defaults(handler=_cmd_hardware_show)

    evaluate = commands.add_parser("evaluate", help="simulate one training (or inference) step with the default plan")
    add_workload_arguments(evaluate, positional=False)
    evaluate.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    evaluate.add_argument("--mode", choices=["training", "inference"], default="training")
    evaluate.add_argument("--out", metavar="DIR", help="write result.json, gantt.png, memory.png, trace.json")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=_cmd_evaluate)

    checkpoint = commands.add_parser("checkpoint", help="activation checkpointing under a memory budget")
    checkpoint.add_argument("--graph", metavar="FILE.json|FILE.yaml",
                            help="rematerialisation graph: node-link JSON (cost_cpu, cost_ram) or YAML")
    add_workload_arguments(checkpoint, positional=False, required=False)
    checkpoint.add_argument("--hardware", metavar="NAME|FILE.yaml", help="accelerator of a --workload")
    target = checkpoint.add_mutually_exclusive_group(required=True)
    target.add_argument("--budget", metavar="B|P%",
                        help="absolute budget or a percentage of the store-all peak (--workload: bytes of "
                             "dynamic DRAM, i.e. activations and transient gradients)")
    target.add_argument("--sweep", type=_positive_int, metavar="POINTS",
                        help="sweep POINTS budgets from the smallest feasible to store-all (CP-SAT, GA, greedy, sqrt(n))")
    checkpoint.add_argument("--method", choices=list(dict.fromkeys(METHODS + TRAINING_METHODS)), default="cpsat")
    checkpoint.add_argument("--objective", choices=list(OBJECTIVES), default="latency",
                            help="what a training-graph plan minimises (default latency)")
    checkpoint.add_argument("--local-budget", action="append", metavar="MEMORY=B|P%",
                            help="bound a local memory below its capacity (bytes or %% of it; repeatable)")
    add_solver_arguments(checkpoint)
    add_ga_arguments(checkpoint, population=100, generations=50)
    checkpoint.add_argument("--out", metavar="DIR", help="write result.json (--workload: checkpoint.json and the "
                            "plan's result.json, gantt.png, memory.png, trace.json), or sweep.csv and sweep.png")
    checkpoint.add_argument("--json", action="store_true")
    checkpoint.set_defaults(handler=_cmd_checkpoint)

    allocate = commands.add_parser("allocate", help="assign ops to cores and order them (makespan, energy, Pareto)")
    allocate.add_argument("--instance", metavar="FILE.yaml", help="abstract allocation instance (see instances/allocation)")
    add_workload_arguments(allocate, positional=False, required=False)
    allocate.add_argument("--hardware", metavar="NAME|FILE.yaml", help="accelerator of a --workload")
    allocate.add_argument("--method", choices=list(ALLOCATION_METHODS), default="cpsat")
    allocate.add_argument("--objective", choices=list(ALLOCATION_OBJECTIVES), default="latency",
                          help="latency (makespan), energy, or pareto (epsilon-constraint front); default latency")
    add_solver_arguments(allocate)
    add_ga_arguments(allocate, population=64, generations=250)
    allocate.add_argument("--out", metavar="DIR", help="write allocation.json (--workload: also result.json, "
                          "gantt.png, memory.png, trace.json; pareto: front.csv, front.png)")
    allocate.add_argument("--json", action="store_true")
    allocate.set_defaults(handler=_cmd_allocate)
    return parser


def add_solver_arguments(p: argparse.ArgumentParser) -> None:
    """--time-limit, --workers, --seed, --deterministic: shared by every command that solves."""
    p.add_argument("--time-limit", type=_positive_float, default=60.0, metavar="S", help="seconds per solve (default 60)")
    p.add_argument("--workers", type=_positive_int, default=2, help="solver threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--deterministic", action="store_true",
                   help="reproducible CP-SAT runs with several workers (slower)")


def add_ga_arguments(p: argparse.ArgumentParser, population: int, generations: int) -> None:
    """--population, --generations with the defaults of the GA the field knows for this decision."""
    p.add_argument("--population", type=_positive_int, default=population, help=f"GA population (default {population})")
    p.add_argument("--generations", type=_positive_int, default=generations,
                   help=f"GA generations (default {generations})")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except MonetError as exc:
        print(f"monet: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
