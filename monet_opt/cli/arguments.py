"""What the commands share: argument types and groups, the solver options, the deadline of a
command's work, the workload of a command."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

from monet_opt.errors import InputError
from monet_opt.families import default_registry
from monet_opt.io import check_output_file
from monet_opt.model.hardware import Accelerator
from monet_opt.model.training import (
    ACCUMULATORS, PRECISIONS, Optimizer, UpdatePlacement, derive_training_graph, inference_graph, precision_named,
)
from monet_opt.model.workload import BUILTIN_MODELS, Graph, load_forward_graph
from monet_opt.solving.budget import Budget
from monet_opt.solving.common import DEFAULT_TIME_LIMIT_S, Deadline, GAConfig, SolverOptions, parse_cpsat_params
from monet_opt.solving.contract import Family
from monet_opt.solving.registry import Registry




class Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} must be positive")
    return value


def path_text(text: str) -> str:
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
    p.add_argument("--batch", type=positive_int, help="batch size (default: the model's preset)")
    p.add_argument("--seq-len", type=positive_int, help="sequence length of a language model")
    p.add_argument("--image-size", type=positive_int, help="input height = width of a CNN")
    p.add_argument("--classes", type=positive_int, help="number of classes of a CNN")
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


REPORT_RESERVE_S = 1.0
"""Seconds of a command's time limit kept for writing its --out files (plots, trace and JSON take
0.5-0.8 s for ResNet-18 and GPT-2 small training plans), at most a fifth of the limit: the limit
holds for the whole command."""


def work_deadline(args: argparse.Namespace, limit_s: float) -> Deadline:
    """The deadline of a command's work: its time limit from its start, less REPORT_RESERVE_S when
    it writes --out files."""
    if getattr(args, "out", None):
        limit_s -= min(REPORT_RESERVE_S, 0.2 * limit_s)
    return Deadline(args.started, limit_s)


def solver_options(args: argparse.Namespace, ga: GAConfig | None = None) -> SolverOptions:
    """The solver options of a solving command's arguments, with the GA settings `ga` (None: the
    family's default)."""
    export = None if args.export_model is None else Path(args.export_model)
    if export is not None:
        check_output_file(export, "--export-model")
    params = parse_cpsat_params(args.cpsat_params) if args.cpsat_params else ()
    return SolverOptions(workers=args.workers, seed=args.seed,
                         deterministic=args.deterministic, cpsat_params=params, log_search=args.log,
                         export_model=export, progress=not args.quiet, ga=ga)


def local_budgets(items: list[str] | None, hw: Accelerator) -> dict[str, int]:
    """--local-budget MEMORY=BYTES|P% (of the memory's capacity), repeatable."""
    budgets = {}
    for item in items or []:
        memory, _, text = item.partition("=")
        if memory not in hw.memories or not text:
            raise InputError(f"--local-budget {item!r}: expected MEMORY=BYTES|P% with MEMORY one of "
                             f"{', '.join(hw.memories)}")
        budgets[memory] = Budget.parse(text, f"--local-budget {memory}").resolve(hw.memories[memory].capacity_bytes)
    return budgets


def add_budget_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """--budget B|P% or --sweep POINTS (one of them)."""
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--budget", metavar="B|P%", help=what)
    target.add_argument("--sweep", type=positive_int, metavar="POINTS",
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
    p.add_argument("--out", type=path_text, metavar="DIR", help=f"write {files}")
    p.add_argument("--json", action="store_true", help="print the answer as JSON (the README's shared keys)")


def add_solver_arguments(p: argparse.ArgumentParser) -> None:
    """Time limit, workers, seed and CP-SAT passthrough: shared by every command that solves."""
    p.add_argument("--time-limit", type=positive_float, default=DEFAULT_TIME_LIMIT_S, metavar="S",
                   help="wall-clock seconds for the whole command, set-up and warm starts included (default 60)")
    p.add_argument("--workers", type=positive_int, default=2, help="solver threads (default 2)")
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
    p.add_argument("--population", type=positive_int, default=population, help=f"GA population (default {population})")
    p.add_argument("--generations", type=positive_int, default=generations,
                   help=f"GA generations (default {generations})")


DEFAULT_INSTANCE = Path(__file__).resolve().parent.parent.parent / "instances" / "default.yaml"
"""`monet solve` without an instance, and `monet bench`'s directory: the source tree's instances/."""


def registry_of(args: argparse.Namespace) -> Registry:
    """The registry the command was given (`main(argv, registry)`), else every family of monet_opt."""
    return args.registry or default_registry()
