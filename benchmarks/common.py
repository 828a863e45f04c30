"""Shared helpers of the benchmark scripts: a header naming date, machine and command, timing."""

from __future__ import annotations

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
