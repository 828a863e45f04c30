"""Shared helpers of the benchmark scripts: a header naming date, machine and command, timing."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def header() -> str:
    cpu = platform.processor() or platform.machine()
    return "\n".join([
        f"date:    {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"machine: {platform.system()} {platform.machine()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"command: python {' '.join(sys.argv)}",
    ])


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
