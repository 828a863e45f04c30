"""Shared helpers of the benchmark scripts: a header naming date, machine and command, timing."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def header() -> str:
    from monet_opt.io import provenance

    return provenance(f"python {' '.join(sys.argv)}")


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of `repeats` calls (one untimed warm-up call first)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def emit(text: str, out: str | None) -> None:
    """Print `text`; with `out`, also write it there atomically."""
    print(text)
    if out:
        from monet_opt.io import write_text_atomic

        write_text_atomic(out, text + "\n")


def checkpoint_training_arguments(description: str):
    """The options of the checkpointing benchmarks on training graphs (workloads, hardware, budgets in
    percent of the store-all dynamic peak, time limit per solve, workers, output file), the solver
    options they give and the accelerator: (args, options, hw)."""
    from monet_opt.model.hardware import load_accelerator
    from monet_opt.solving.common import SolverOptions

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--workloads", nargs="+", default=["resnet18", "gpt2-mini"])
    parser.add_argument("--hardware", default="edge-tpu-quad")
    parser.add_argument("--budgets", type=int, nargs="+", default=[50, 60, 70, 80, 90])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    return args, SolverOptions(workers=args.workers, seed=0), load_accelerator(args.hardware)
