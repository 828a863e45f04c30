"""Every core busy: how far each way of planning ResNet-18 on edge-tpu-quad is from the physical
limits (`monet_opt/model/limits.py`), and how busy each core is.

Cases: ResNet-18 (224, batch 1) int8 inference with int16 partial sums; the training step (Adam)
in fp32 and in bf16 mixed precision. Columns, each one `monet solve` of an instance
(`studies.pipeline.solve_instance`, the time limit on 2 workers, its plan validated by the
simulator):

- default: layer by layer, every value in DRAM, the default allocation (every solve's baseline);
- fusion: fusion alone (cpsat; stacks run one at a time on their cores);
- alloc: allocation alone (cpsat; each op on one core);
- spread: allocation with layers split across cores (`optimise.allocation.spread`, the plan
  family; all of DRAM its budget);
- fusion+spread: fusion, then that allocation over its partition (ops alone may be split, a fused
  stack's MAC ops each on its own array, tiles pipelined between them).

For the fastest plan of each case: its latency over the compute and DRAM bounds, and each core's
busy share (the cycles a task occupies it, over the latency). The checks at the end state the
targets of the issue that asks for this (Stream 0.0.8's GA: 3,931,020 cycles for the inference on
its quad-core TPU-like machine).

    python benchmarks/multicore.py [--time-limit 60] [--cases NAME ...] [--out benchmarks/results/multicore.txt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import yaml
from common import emit, header

from monet_opt.errors import InfeasibleError, InputError
from monet_opt.solving.contract import SolverBug
from monet_opt.studies.instance import load_instance
from monet_opt.studies.pipeline import InstanceResult, solve_instance

BASE = {"workload": "resnet18", "image_size": 224, "batch": 1, "hardware": "edge-tpu-quad"}
CASES = {
    "resnet18 int8 inference": {**BASE, "mode": "inference", "precision": "int8", "partial_sum": "int16"},
    "resnet18 fp32 training": dict(BASE),
    "resnet18 bf16-mixed training": {**BASE, "precision": "bf16-mixed"},
}
FUSION = {"method": "cpsat", "max_stack": 4}
COLUMNS = {
    "fusion": {"fusion": FUSION},
    "alloc": {"allocation": {"method": "cpsat"}},
    "spread": {"allocation": {"method": "cpsat", "spread": True}},
    "fusion+spread": {"fusion": FUSION, "allocation": {"method": "cpsat", "spread": True}},
}
STREAM_INFERENCE_CYCLES = 3_931_020
"""Stream 0.0.8's GA on its quad-core TPU-like machine, ResNet-18 int8 inference (issue #30)."""


def solve(case: dict, optimise: dict, time_limit_s: float, directory: Path) -> tuple[InstanceResult | None, str, float]:
    """One solve: its answer (None: none), a note (exit code or status), the wall time."""
    path = directory / "instance.yaml"
    path.write_text(yaml.safe_dump({**case, "optimise": optimise, "time_limit": time_limit_s}))
    started = time.perf_counter()
    try:
        solved = solve_instance(load_instance(path), workers=2, progress=False, started=started)
    except (InfeasibleError, InputError, SolverBug) as error:
        return None, f"exit {type(error).__name__}", time.perf_counter() - started
    wall = time.perf_counter() - started
    code = max(int(s.result.exit_code) for s in solved.stages)
    return (solved if solved.to_dict()["validated"] else None), f"{solved.answer.status.value}, exit {code}", wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out")
    args = parser.parse_args()
    lines = [header(), "", f"time limit {args.time_limit:g} s per solve, 2 workers; latency in cycles of the validated "
             "plan ('none': no validated plan); bounds in cycles; x: the fastest plan's latency over each bound",
             f"{'case':<30}{'default':>13}" + "".join(f"{c:>14}" for c in COLUMNS)
             + f"{'DRAM bound':>13}{'compute':>11}{'x DRAM':>8}{'x comp':>8}{'wall [s]':>10}"]
    details: list[str] = []
    checks: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.cases:
            runs = {column: solve(CASES[name], optimise, args.time_limit, Path(scratch))
                    for column, optimise in COLUMNS.items()}
            answered = {c: solved for c, (solved, _, _) in runs.items() if solved is not None}
            any_solved = next(iter(answered.values()), None)
            if any_solved is None:
                lines.append(f"{name:<30}" + "".join(f"{runs[c][1]:>14}" for c in COLUMNS))
                continue
            limits, default = any_solved.limits, any_solved.baseline.latency_cycles
            best_column = min(answered, key=lambda c: answered[c].simulation.latency_cycles)
            best = answered[best_column].simulation
            ratios = limits.ratios(best.latency_cycles)
            lines.append(f"{name:<30}{default:>13,}" + "".join(
                f"{answered[c].simulation.latency_cycles:>14,}" if c in answered else f"{'none':>14}" for c in COLUMNS)
                + f"{limits.dram_cycles:>13,}{limits.compute_cycles:>11,}{ratios['dram']:>8.2f}{ratios['compute']:>8.2f}"
                + f"{max(wall for _, _, wall in runs.values()):>10.1f}")
            print(lines[-1], file=sys.stderr, flush=True)
            shares = best.core_busy_shares()
            details += [f"{name}: fastest {best_column} ({runs[best_column][1]}), {best.latency_cycles:,} cycles, "
                        f"{limits.line(best.latency_cycles)}",
                        "    busy: " + ", ".join(f"{core} {share:.0%}" for core, share in shares.items()),
                        "    statuses: " + "; ".join(f"{c} {runs[c][1]}" for c in COLUMNS)]
            checks += _checks(name, best.latency_cycles, shares, limits.dram_cycles)
    lines += ["", "fastest plan of each case:", *details, "", "checks (each: the target, then what was measured):",
              *checks]
    emit("\n".join(lines), args.out)


def _checks(name: str, latency: int, shares: dict[str, float], dram_bound: int) -> list[str]:
    if "inference" in name:
        target = int(0.7 * STREAM_INFERENCE_CYCLES)
        arrays = {core: share for core, share in shares.items() if core.startswith("tpu")}
        return [f"{name}: at most 0.7x Stream's {STREAM_INFERENCE_CYCLES:,} cycles (<= {target:,}): {latency:,}, "
                + ("yes" if latency <= target else f"NO ({latency / STREAM_INFERENCE_CYCLES:.2f}x)"),
                f"{name}: all four arrays busy: " + ", ".join(f"{c} {s:.0%}" for c, s in sorted(arrays.items()))]
    return [f"{name}: within 1.5x of the compulsory-DRAM bound (<= {int(1.5 * dram_bound):,}): {latency:,} "
            f"({latency / dram_bound:.2f}x): " + ("yes" if latency <= 1.5 * dram_bound else "NO")]


if __name__ == "__main__":
    main()
