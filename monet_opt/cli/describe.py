"""Commands that describe and evaluate: `monet workload`, `monet hardware`, `monet evaluate`."""

from __future__ import annotations

import argparse
import json
import sys

from monet_opt.io import check_output_dir, check_output_file, write_json_atomic
from monet_opt.model.cost import CostTable
from monet_opt.model.hardware import builtin_hardware, load_accelerator
from monet_opt.model.hardware.describe import accelerator_to_dict, format_accelerator
from monet_opt.model.limits import physical_limits
from monet_opt.model.training import Optimizer, UpdatePlacement, derive_training_graph, memory_report, precision_named
from monet_opt.model.training.summary import format_summary, workload_summary
from monet_opt.model.workload.serialize import graph_to_dict
from monet_opt.report import format_result, result_to_dict, write_reports
from monet_opt.schedule import default_plan, simulate
from monet_opt.solving.contract import ExitCode

from monet_opt.cli.arguments import workload_graphs
from monet_opt.cli.arguments import Parser, add_workload_arguments, path_text


def cmd_workload_show(args: argparse.Namespace) -> int:
    forward, training = workload_graphs(args)
    precision = precision_named(args.precision, True, args.partial_sum)
    peaks = {u.value: memory_report(training if u.value == args.updates else
                                    derive_training_graph(forward, Optimizer(args.optimizer), precision, u)
                                    ).store_all_peak_bytes for u in UpdatePlacement}
    summary = workload_summary(forward, training, UpdatePlacement(args.updates), peaks)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary))
    return 0


def cmd_workload_export(args: argparse.Namespace) -> int:
    check_output_file(args.output, "-o")
    _, training = workload_graphs(args)
    write_json_atomic(args.output, graph_to_dict(training))
    print(f"wrote {args.output}: {len(training.ops)} ops, {len(training.tensors)} tensors")
    return 0


def cmd_hardware_list(args: argparse.Namespace) -> int:
    for name in builtin_hardware():
        hw = load_accelerator(name)
        print(f"{name:<16} {len(hw.cores)} cores  {hw.description}")
    return 0


def cmd_hardware_show(args: argparse.Namespace) -> int:
    hw = load_accelerator(args.hardware)
    print(json.dumps(accelerator_to_dict(hw), indent=1) if args.json else format_accelerator(hw))
    return 0


def cmd_hardware_import(args: argparse.Namespace) -> int:
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.out:
        check_output_dir(args.out)
    hw = load_accelerator(args.hardware)
    graph = workload_graphs(args, args.mode)[1]
    table = CostTable(graph, hw)
    result = simulate(graph, hw, default_plan(graph, table), table)
    limits = physical_limits(graph, hw)
    if args.out:
        write_reports(result, args.out, workload=args.workload, mode=args.mode)
    if args.json:
        print(json.dumps({**result_to_dict(result, workload=args.workload, mode=args.mode, timeline=False),
                          "physical_limits": limits.to_dict(result.latency_cycles)}, indent=1))
    else:
        print(format_result(result, workload=args.workload, mode=args.mode))
        print(f"physical limits: {limits.line(result.latency_cycles)}")
        if args.out:
            print(f"wrote {args.out}/result.json, gantt.png, memory.png, trace.json")
    if result.violations:
        print(f"monet: the plan violates {len(result.violations)} constraints, first: {result.violations[0].message}",
              file=sys.stderr)
        return int(ExitCode.VIOLATES)
    return 0


def add_workload_command(commands: argparse._SubParsersAction) -> None:
    """`monet workload show|export`."""
    workload = commands.add_parser("workload", help="training graphs of built-in or ONNX models")
    workload_cmds = workload.add_subparsers(dest="workload_command", required=True, parser_class=Parser)
    show = workload_cmds.add_parser("show", help="parameters, MACs, ops and memory of one training step")
    add_workload_arguments(show)
    show.add_argument("--json", action="store_true", help="print a JSON object instead of text")
    show.set_defaults(handler=cmd_workload_show)
    export = workload_cmds.add_parser("export", help="write the training graph as JSON")
    add_workload_arguments(export)
    export.add_argument("-o", "--output", type=path_text, required=True, metavar="FILE.json")
    export.set_defaults(handler=cmd_workload_export)


def add_hardware_command(commands: argparse._SubParsersAction) -> None:
    """`monet hardware list|show|import`."""
    hardware = commands.add_parser("hardware", help="accelerator descriptions")
    hardware_cmds = hardware.add_subparsers(dest="hardware_command", required=True, parser_class=Parser)
    hardware_cmds.add_parser("list", help="the built-in library").set_defaults(handler=cmd_hardware_list)
    hw_show = hardware_cmds.add_parser("show", help="one accelerator, built-in or YAML file")
    hw_show.add_argument("hardware", metavar="NAME|FILE.yaml")
    hw_show.add_argument("--json", action="store_true")
    hw_show.set_defaults(handler=cmd_hardware_show)
    hw_import = hardware_cmds.add_parser("import", help="translate a ZigZag core or a Stream accelerator")
    hw_import.add_argument("--from", dest="source", choices=["zigzag", "stream"], required=True)
    hw_import.add_argument("file", metavar="FILE.yaml")
    hw_import.add_argument("-o", "--output", type=path_text, required=True, metavar="OUT.yaml")
    hw_import.add_argument("--unroll", metavar="D1=K,D2=C",
                           help="the loop dimension each array dimension unrolls (default D1=K,D2=C,D3=OX)")
    hw_import.set_defaults(handler=cmd_hardware_import)


def add_evaluate_command(commands: argparse._SubParsersAction) -> None:
    """`monet evaluate`."""
    evaluate = commands.add_parser("evaluate", help="simulate one training (or inference) step with the default plan")
    add_workload_arguments(evaluate, positional=False)
    evaluate.add_argument("--hardware", required=True, metavar="NAME|FILE.yaml")
    evaluate.add_argument("--mode", choices=["training", "inference"], default="training")
    evaluate.add_argument("--out", type=path_text, metavar="DIR",
                          help="write result.json, gantt.png, memory.png, trace.json")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=cmd_evaluate)
