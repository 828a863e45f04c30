"""The `monet` command line. Exit codes (`contract.ExitCode`): 0 a validated answer, 2 bad input, 3 proven
infeasible, 4 no answer within the time limit, 5 an answer that violates a constraint; errors are one
line on stderr."""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import signal
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version as package_version

from monet_opt.errors import MonetError
from monet_opt.families import default_registry
from monet_opt.solving.contract import ExitCode, SolverBug
from monet_opt.solving.registry import Registry

from monet_opt.cli.arguments import Parser
from monet_opt.cli.describe import add_evaluate_command, add_hardware_command, add_workload_command
from monet_opt.cli.studies import add_bench_command, add_sweep_command


def build_parser(argv: Sequence[str] | None = None, registry: Registry | None = None) -> argparse.ArgumentParser:
    """The `monet` parser. The options of a solving command (which list the methods of `registry`,
    default every family of monet_opt, so they import the solvers) are added only for the command
    named in `argv` (None: for all)."""
    parser = Parser(prog="monet", description="Model and optimise neural-network training on dataflow accelerators.")
    parser.add_argument("--version", action="version", version=f"monet_opt {package_version('monet_opt')}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    add_workload_command(commands)
    add_hardware_command(commands)
    solve_cmd = commands.add_parser("solve", help="solve one instance file: a training instance (fusion, checkpointing "
                                    "and allocation as it says, against the layer-by-layer baseline) or an instance "
                                    "of one family")
    add_bench_command(commands)
    add_sweep_command(commands)
    add_evaluate_command(commands)
    checkpoint = commands.add_parser("checkpoint", help="activation checkpointing under a memory budget")
    checkpoint_cmds = checkpoint.add_subparsers(dest="checkpoint_command", required=True, parser_class=Parser)
    solving = {
        ("solve",): (solve_cmd, "solve", "populate_solve"),
        ("checkpoint", "graph"): (checkpoint_cmds.add_parser(
            "graph", help="an abstract rematerialisation graph (node-link JSON or YAML)"), "decisions",
            "populate_checkpoint_graph"),
        ("checkpoint", "training"): (checkpoint_cmds.add_parser(
            "training", help="a training graph priced on an accelerator"), "decisions", "populate_checkpoint_training"),
        ("allocate",): (commands.add_parser(
            "allocate", help="assign ops to cores and order them (makespan, energy, Pareto)"), "decisions",
            "populate_allocate"),
        ("fuse",): (commands.add_parser("fuse", help="choose which ops run as fused stacks (layer fusion)"),
                    "decisions", "populate_fuse"),
    }
    words = [a for a in (argv or []) if not a.startswith("-")]
    named = [entry for path, entry in solving.items() if argv is None or tuple(words[:len(path)]) == path]
    if named:  # the modules of the solving commands import the families (OR-Tools, DEAP, PuLP): only when named
        registry = registry or default_registry()
    for sub, module, populate in named:
        getattr(importlib.import_module(f"monet_opt.cli.{module}"), populate)(sub, registry)
    return parser


def main(argv: Sequence[str] | None = None, registry: Registry | None = None) -> int:
    """`monet ARGS` with the families of `registry` (default: every family of monet_opt; a test or a
    script passes its own, extended with `Registry.with_family` or `with_method`); the exit code."""
    started = time.perf_counter()  # --time-limit counts from here: parsing imports the solvers
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser(argv, registry).parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (already printed, one line)
        return int(exc.code or 0)
    args.started = started
    args.registry = registry
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
